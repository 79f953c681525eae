"""Pure reader pieces with plain values: splitting, windows, cache, shuffle buffer, anchors, topology."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from lerobot_wds.reader.cache import LruCache
from lerobot_wds.reader.splitting import ShardRef, plan_epoch, samples_per_rank, shuffled_shards
from lerobot_wds.reader.stages import anchors, cycle_passes, shuffle_buffer, skip_first
from lerobot_wds.reader.topology import Topology, detect_rank_world
from lerobot_wds.reader.windows import SARM_DELTA_INDICES, delta_indices, preset_delta_timestamps, query_positions

SHARDS = [ShardRef(f"s{i}", f) for i, f in enumerate([30, 10, 25, 5, 40, 15, 20, 35, 12, 8])]


def test_plan_covers_every_shard_once_and_quota_is_equal() -> None:
    for world, workers in [(1, 1), (2, 2), (3, 1), (2, 5)]:
        plan = plan_epoch(SHARDS, seed=7, epoch=3, shuffle=True, world_size=world, num_workers=workers)
        paths = [s.path for rank in plan for slot in rank for s in slot.shards]
        assert sorted(paths) == sorted(s.path for s in SHARDS)
        quotas = {slot.quota for rank in plan for slot in rank}
        assert len(quotas) == 1
        assert quotas.pop() == max(slot.frames for rank in plan for slot in rank)
        assert len({sum(s.quota for s in rank) for rank in plan}) == 1


def test_plan_trim_uses_smallest_slot_and_is_identical_on_every_call() -> None:
    a = plan_epoch(SHARDS, seed=1, epoch=0, shuffle=True, world_size=2, num_workers=2, uneven="trim")
    b = plan_epoch(list(SHARDS), seed=1, epoch=0, shuffle=True, world_size=2, num_workers=2, uneven="trim")
    assert a == b
    assert a[0][0].quota == min(s.frames for r in a for s in r)
    assert samples_per_rank(a) == 2 * a[0][0].quota


def test_plan_balances_ranks_by_frames() -> None:
    plan = plan_epoch(SHARDS, seed=0, epoch=0, shuffle=True, world_size=2, num_workers=1)
    loads = [plan[r][0].frames for r in range(2)]
    assert abs(loads[0] - loads[1]) <= max(s.frames for s in SHARDS)
    assert sum(loads) == sum(s.frames for s in SHARDS)


def test_shard_shuffle_depends_on_seed_and_epoch_only() -> None:
    e0 = shuffled_shards(SHARDS, 5, 0, True)
    assert e0 == shuffled_shards(SHARDS, 5, 0, True)
    assert e0 != shuffled_shards(SHARDS, 5, 1, True)
    assert e0 != shuffled_shards(SHARDS, 6, 0, True)
    assert shuffled_shards(SHARDS, 5, 0, False) == SHARDS


def test_plan_errors() -> None:
    with pytest.raises(ValueError, match="3 non-empty shards cannot feed 2 ranks x 2 workers"):
        plan_epoch(SHARDS[:3], seed=0, epoch=0, shuffle=False, world_size=2, num_workers=2)
    with pytest.raises(ValueError, match="uneven='wrap'.*'pad', 'trim'"):
        plan_epoch(SHARDS, seed=0, epoch=0, shuffle=False, world_size=1, num_workers=1, uneven="wrap")  # type: ignore[arg-type]


def test_query_positions_clamp_and_pad_like_lerobot() -> None:
    pos, pad = query_positions(1, 5, (-2, -1, 0, 3, 4))
    assert pos == [0, 0, 1, 4, 4]
    assert pad == [True, False, False, False, True]


def test_delta_indices_validation() -> None:
    assert delta_indices({"a": [-0.1, 0.0, 0.2]}, 10, ["a"], 1e-4) == {"a": (-1, 0, 2)}
    with pytest.raises(ValueError, match=r"\['zz'\] are not features"):
        delta_indices({"zz": [0.0]}, 10, ["a"], 1e-4)
    with pytest.raises(ValueError, match="not multiples of 1/10"):
        delta_indices({"a": [0.05]}, 10, ["a"], 1e-4)


def test_sarm_preset() -> None:
    assert len(SARM_DELTA_INDICES) == 13
    dt = preset_delta_timestamps("sarm", ["cam"], 30)
    assert set(dt) == {"cam", "observation.state"}
    assert [round(d * 30) for d in dt["cam"]] == list(SARM_DELTA_INDICES)
    assert preset_delta_timestamps("single", ["cam"], 30) is None
    with pytest.raises(ValueError, match="expected one of"):
        preset_delta_timestamps("nope", ["cam"], 30)  # type: ignore[arg-type]


def test_lru_cache_counts_and_bounds_cost() -> None:
    cache: LruCache[bytes] = LruCache(10, cost=len)
    cache.put(("a", 1), b"xxxx")
    cache.put(("a", 2), b"yyyy")
    assert cache.get(("a", 1)) == b"xxxx"
    cache.put(("b", 1), b"zzzz")  # 12 > 10: evicts least recently used ("a", 2)
    assert cache.get(("a", 2)) is None
    st = cache.stats()
    assert (st.hits, st.misses, st.evictions, st.size, st.cost) == (1, 1, 1, 2, 8)
    assert cache.drop_group("a") == 1
    assert cache.stats().cost == 4 and cache.stats().evictions == 1


def test_shuffle_buffer_is_a_permutation_and_deterministic() -> None:
    items = list(range(100))
    a = list(shuffle_buffer(items, 10, random.Random(1)))
    assert sorted(a) == items and a != items
    assert a == list(shuffle_buffer(items, 10, random.Random(1)))
    assert list(shuffle_buffer(items, 10, None)) == items


@dataclass
class _Ep:
    index: int
    length: int


def test_anchors_yield_every_frame_once_and_mark_last() -> None:
    eps = [_Ep(i, n) for i, n in enumerate([5, 0, 3, 7, 1])]
    for rng in (None, random.Random(3)):
        out = list(anchors(eps, active=3, rng=rng))  # type: ignore[arg-type]
        assert Counter((e.index, k) for e, k, _ in out) == Counter(
            (e.index, k) for e in eps for k in range(e.length)
        )
        lasts = [(e.index, k) for e, k, last in out if last]
        assert sorted(i for i, _ in lasts) == [0, 2, 3, 4]
        final = {e.index: i for i, (e, _k, _l) in enumerate(out)}
        assert all(out[final[i]][2] for i in final)  # last flag = final appearance
    seq = list(anchors(eps, active=1, rng=None))  # type: ignore[arg-type]
    assert [(e.index, k) for e, k, _ in seq][:5] == [(0, k) for k in range(5)]


def test_skip_and_cycle() -> None:
    assert list(skip_first(range(5), 2)) == [2, 3, 4]
    assert list(skip_first(range(2), 5)) == []
    it = cycle_passes(lambda p: [(p, 0), (p, 1)], "x")
    assert [next(it) for _ in range(5)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    with pytest.raises(ValueError, match="x: a full pass"):
        next(cycle_passes(lambda p: [], "x"))


def test_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Topology(1, 2, 1, 3).slot == 4
    with pytest.raises(ValueError, match="rank 2 must be in"):
        Topology(2, 2)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert detect_rank_world() == (1, 4)
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ValueError, match="only one of"):
        detect_rank_world()


def test_float_conversion_is_bit_exact_with_lerobots_torch_expression() -> None:
    import numpy as np
    import torch

    from lerobot_wds.reader.sample import to_output_images

    values = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    ours = to_output_images(values, return_uint8=False)
    theirs = (torch.from_numpy(values) / 255.0).type(torch.float32)
    assert ours.dtype == torch.float32 and torch.equal(ours, theirs)
    assert to_output_images(values, return_uint8=True).dtype == torch.uint8


def test_loader_consumed_follows_round_robin_and_caps_at_quota() -> None:
    from lerobot_wds.reader.resume import loader_consumed

    # 7 batches of 4 from 3 workers: workers 0,1,2,0,1,2,0 -> 3, 2, 2 batches
    assert loader_consumed(7, 4, 3, quota=100) == {0: 12, 1: 8, 2: 8}
    assert loader_consumed(0, 4, 3, quota=100) == {0: 0, 1: 0, 2: 0}
    assert loader_consumed(9, 4, 1, quota=30) == {0: 30}  # the last batch of the epoch was short


def test_merge_state_accumulates_workers_of_one_epoch_and_rejects_foreign_states() -> None:
    from lerobot_wds.reader.resume import make_state, merge_state

    a = merge_state(None, make_state(5, 2, {0: 8}), seed=5)
    b = merge_state(a, make_state(5, 2, {1: 4}), seed=5)
    assert b == {"epoch": 2, "consumed": {"0": 8, "1": 4}}
    assert merge_state(b, make_state(5, 3, {1: 1}), seed=5) == {"epoch": 3, "consumed": {"1": 1}}
    with pytest.raises(ValueError, match="seed 4"):
        merge_state(None, make_state(4, 0, {}), seed=5)
    with pytest.raises(ValueError, match="version"):
        merge_state(None, {**make_state(5, 0, {}), "version": 99}, seed=5)
