"""Unit tests of the converter's pure parts: planning, config parsing/validation, tar writing, retries, LRU."""

from __future__ import annotations

import io
import tarfile
import threading

import pytest

from lerobot_wds.convert.config import ConvertConfig, parse_episodes, parse_part, parse_size
from lerobot_wds.convert.errors import ConfigError, PlanError, TarWriteError
from lerobot_wds.convert.plan import EpisodeEstimate, order_episodes, plan_shards, select_episodes, select_part
from lerobot_wds.convert.tarwriter import ShardWriter
from lerobot_wds.core.errors import RetryError
from lerobot_wds.core.lru import LoadingLRU
from lerobot_wds.core.retry import RetryPolicy, is_transient, with_retries


def est(sizes: list[int]) -> list[EpisodeEstimate]:
    return [EpisodeEstimate(i, 10 * (i + 1), b) for i, b in enumerate(sizes)]


def test_plan_packs_greedily_and_isolates_big_episodes():
    shards = plan_shards(est([40, 50, 30, 200, 10, 10]), target_bytes=100)
    assert [s.episodes for s in shards] == [(0, 1), (2,), (3,), (4, 5)]
    assert [s.est_bytes for s in shards] == [90, 30, 200, 20]
    assert [s.index for s in shards] == [0, 1, 2, 3]
    assert shards[0].frames == 10 + 20
    assert plan_shards([], 100) == []


def test_parts_partition_the_plan():
    shards = plan_shards(est([1] * 7), target_bytes=1)
    parts = [select_part(shards, i, 3) for i in range(3)]
    assert sorted(s.index for p in parts for s in p) == list(range(7))
    assert [s.index for s in parts[1]] == [1, 4]
    with pytest.raises(PlanError, match="0 <= index < count"):
        select_part(shards, 3, 3)


def test_shuffle_is_a_seeded_permutation():
    eps = list(range(50))
    a = order_episodes(eps, "shuffle", 1)
    assert a == order_episodes(eps, "shuffle", 1) and sorted(a) == eps and a != eps
    assert a != order_episodes(eps, "shuffle", 2)
    assert a[:5] == [2, 15, 47, 9, 21]  # pinned: the plan must not change across Python versions
    with pytest.raises(PlanError, match="order must be one of"):
        order_episodes(eps, "random", 1)


def test_select_episodes_keeps_source_order_and_names_unknown():
    assert select_episodes([0, 1, 2, 5], [5, 0]) == [0, 5]
    with pytest.raises(PlanError, match=r"episodes \[3, 7\] are not in the source"):
        select_episodes([0, 1, 2, 5], [3, 7, 0])


def test_config_validation_shows_the_bad_value():
    with pytest.raises(ConfigError, match=r"order must be one of \['source', 'shuffle'\], got 'random'"):
        ConvertConfig(source="a", dest="b", order="random")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"part_index must be in \[0, 2\), got 2"):
        ConvertConfig(source="a", dest="b", part_index=2, part_count=2)
    with pytest.raises(ConfigError, match=r"more than once: \[3\]"):
        ConvertConfig(source="a", dest="b", episodes=(3, 1, 3))
    with pytest.raises(ConfigError, match="workers must be >= 1, got 0"):
        ConvertConfig(source="a", dest="b", workers=0)
    cfg = ConvertConfig(source="a", dest="b", workers=3, part_index=1, part_count=2)
    assert (
        cfg.lookahead == 6 and "workers" not in cfg.output_options() and "part_index" not in cfg.output_options()
    )


def test_parsers():
    assert parse_size("512MB") == 512_000_000 and parse_size("1GiB") == 1 << 30 and parse_size("64k") == 64_000
    assert parse_size("1000") == 1000 and parse_size("1.5 MiB") == 3 << 19
    with pytest.raises(ConfigError, match="size unit 'xb'"):
        parse_size("3xb")
    assert parse_episodes("0,3,10-12") == (0, 3, 10, 11, 12)
    with pytest.raises(ConfigError, match="ends before it starts"):
        parse_episodes("5-2")
    assert parse_part("1/4") == (1, 4)
    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert parse_part("auto", env) == (2, 3)
    with pytest.raises(ConfigError, match="SLURM array variables"):
        parse_part("auto", {})
    with pytest.raises(ConfigError, match="'I/N'"):
        parse_part("1of4")


def test_tar_members_and_layout_errors():
    buf = io.BytesIO()
    w = ShardWriter(buf, name="shards/shard-000000.tar")
    w.add_sample("episode_000002", [("episode_000002.json", b"{}"), ("episode_000002.cam.mp4", b"x" * 700)])
    with pytest.raises(TarWriteError, match="written twice"):
        w.add_sample("episode_000002", [("episode_000002.json", b"{}")])
    with pytest.raises(TarWriteError, match="does not start with 'episode_000003.<suffix>'"):
        w.add_sample("episode_000003", [("episode_000004.json", b"{}")])
    size, sha = w.close()
    data = buf.getvalue()
    assert size == len(data) and size % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert [(m.name, m.size) for m in t.getmembers()] == [
            ("episode_000002.json", 2),
            ("episode_000002.cam.mp4", 700),
        ]
    import hashlib

    assert sha == hashlib.sha256(data).hexdigest()


def test_retry_classification_and_backoff():
    assert (
        is_transient(ConnectionResetError())
        and is_transient(TimeoutError())
        and not is_transient(OSError(5, "EIO"))
    )
    assert not is_transient(FileNotFoundError()) and not is_transient(PermissionError())
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    seen = []
    assert (
        with_retries(flaky, what="upload x", policy=RetryPolicy(3, 0), on_retry=lambda a, e: seen.append(a))
        == "ok"
    )
    assert seen == [1, 2]
    with pytest.raises(RetryError, match=r"upload y: permanent error \(PermissionError"):
        with_retries(
            lambda: (_ for _ in ()).throw(PermissionError("denied")), what="upload y", policy=RetryPolicy(5, 0)
        )


def test_loading_lru_loads_each_key_once_under_concurrency():
    loads = []
    gate = threading.Event()

    def load(k: str) -> str:
        loads.append(k)
        gate.wait(5)
        return k.upper()

    cache: LoadingLRU[str, str] = LoadingLRU(2, load)
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(cache.get("a"))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert out == ["A"] * 4 and loads == ["a"]
    cache.get("b"), cache.get("c")
    assert len(cache) == 2
    cache.get("a")
    assert loads == ["a", "b", "c", "a"]  # "a" was evicted (LRU) and loaded again


def test_loading_lru_does_not_cache_a_failed_load_and_counts_hits() -> None:
    calls: list[str] = []

    def load(k: str) -> str:
        calls.append(k)
        if len(calls) == 1:
            raise OSError("flaky")
        return k.upper()

    cache: LoadingLRU[str, str] = LoadingLRU(2, load)
    with pytest.raises(OSError, match="flaky"):
        cache.get("a")
    assert len(cache) == 0
    assert cache.get("a") == "A" and cache.get("a") == "A"
    assert calls == ["a", "a"] and (cache.hits, cache.misses) == (1, 2)


def test_loading_lru_with_a_cost_keeps_values_up_to_their_summed_cost() -> None:
    loads: list[str] = []

    def load(k: str) -> str:
        loads.append(k)
        return k * 10

    cache: LoadingLRU[str, str] = LoadingLRU(25, load, cost=len)  # two values of 10 fit, not three
    for k in ("a", "b", "a", "c", "a", "b"):
        cache.get(k)
    # "c" evicts "b" (least recently used); "b" comes back and evicts "c"
    assert loads == ["a", "b", "c", "b"] and len(cache) == 2
    assert (cache.stats().cost, cache.stats().evictions) == (20, 2)
    big: LoadingLRU[str, str] = LoadingLRU(5, load, cost=len)
    assert big.get("x") == "x" * 10 and len(big) == 1  # a value over the bound is still returned and kept alone
