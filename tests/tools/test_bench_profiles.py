"""Tests of the benchmark's profile tools: diversity metrics against i.i.d., the episode table, the decode-only
ceiling, the bounded child run (timeout / memory / failure reported as results) and the profile command's
arguments. Exact values are asserted; timing values never are."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.core.format import Manifest
from lerobot_wds.tools.bench.cli import build_configs
from lerobot_wds.tools.bench.mixing import (
    episode_spread,
    iid_reference,
    mixing,
    relative_to_iid,
    same_pair_rate,
)
from lerobot_wds.tools.bench.peers.guard import run_guarded
from lerobot_wds.tools.bench.profiles.ceiling import ceiling_record, run_ceiling
from lerobot_wds.tools.bench.profiles.command import bench_argv, register
from lerobot_wds.tools.bench.profiles.episodes import read_episode_table
from lerobot_wds.tools.bench.report import ratio_rows, render
from lerobot_wds.tools.bench.runner import mixing_report
from lerobot_wds.tools.bench.scenarios import BenchConfig
from lerobot_wds.tools.bench.summary import merge_scenarios
from lerobot_wds.tools.errors import BenchError


def test_same_task_share_and_spread_exact() -> None:
    tasks = {0: "a", 1: "a", 2: "b", 3: "b"}
    batches = [[0, 1, 2, 3], [0, 0, 1, 1]]
    # batch 1: 6 pairs, same task (0,1) and (2,3) -> 2; batch 2: all 6 pairs task a -> 6
    assert same_pair_rate([[tasks[e] for e in b] for b in batches]) == pytest.approx(8 / 12)
    assert episode_spread(batches) == pytest.approx((np.std([0, 1, 2, 3]) + 0.5) / 2)
    out = mixing(batches, tasks)
    assert out["same_task_pair_rate"] == pytest.approx(0.6667, abs=1e-4)
    assert out["same_episode_pair_rate"] == pytest.approx(2 / 12, abs=1e-4)  # (0,0) and (1,1) in batch 2
    assert out["distinct_episodes_per_batch"] == 3.0
    assert "same_task_pair_rate" not in mixing(batches)


def test_iid_reference_matches_the_analytic_values_and_is_seeded() -> None:
    lengths = {e: 100 + 10 * e for e in range(40)}
    tasks = {e: f"task{e * 4 // 40}" for e in range(40)}  # recorded task by task: 4 blocks of 10 episodes
    ref = iid_reference(lengths, tasks, 16, seed=3)
    assert ref == iid_reference(lengths, tasks, 16, seed=3)
    total = sum(lengths.values())
    share = np.asarray([lengths[e] / total for e in range(40)])
    task_share = [sum(lengths[e] for e in range(40) if tasks[e] == t) / total for t in sorted(set(tasks.values()))]
    assert ref["distinct_episodes_per_batch_exact"] == pytest.approx(
        float(np.sum(1 - (1 - share) ** 16)), abs=1e-3
    )
    assert ref["distinct_episodes_per_batch"] == pytest.approx(ref["distinct_episodes_per_batch_exact"], rel=0.01)
    assert ref["same_task_pair_rate"] == pytest.approx(sum(p * p for p in task_share), rel=0.03)
    assert ref["same_episode_pair_rate"] == pytest.approx(float(np.sum(share**2)), rel=0.05)
    mean = float(np.sum(share * np.arange(40)))
    pop_std = math.sqrt(float(np.sum(share * (np.arange(40) - mean) ** 2)))
    # the within-batch std (ddof 0) of 16 draws is below the population's: E[s^2] = (15/16) var
    assert pop_std * 0.9 < ref["episode_index_std"] < pop_std
    # a loader serving runs of neighbours: low spread, tasks repeated -> reported far from i.i.d.
    neighbours = [[b * 2 + i % 4 for i in range(16)] for b in range(18)]
    rel = relative_to_iid(mixing(neighbours, tasks), ref)
    assert rel["same_task_pair_rate"] > 2.5 and rel["episode_index_std"] < 0.15
    with pytest.raises(ValueError, match="need episodes"):
        iid_reference({}, {}, 16)


def test_episode_table_and_mixing_report_of_a_lerobot_root(make_lerobot_dataset, tmp_path: Path) -> None:
    fx = make_lerobot_dataset(episode_lengths=(5, 12, 3, 8), tasks=("open", "open", "fold", "open"))
    table = read_episode_table(fx.root)
    assert table.lengths == {0: 5, 1: 12, 2: 3, 3: 8}
    assert table.tasks == {0: "open", 1: "open", 2: "fold", 3: "open"}
    assert table.subset({1, 2}).lengths == {1: 12, 2: 3}
    report = mixing_report([[0, 1, 2], [3, 3, 1]], BenchConfig("unused", meta_root=str(fx.root), batch_size=3))
    assert report["mixing"]["same_task_pair_rate"] == pytest.approx(4 / 6, abs=1e-4)  # (0,1) + all of batch 2
    assert set(report["mixing_iid"]) >= {"same_task_pair_rate", "episode_index_std", "distinct_episodes_per_batch"}
    assert report["mixing_vs_iid"]["same_task_pair_rate"] == pytest.approx(
        report["mixing"]["same_task_pair_rate"] / report["mixing_iid"]["same_task_pair_rate"], abs=1e-3
    )
    missing = mixing_report([[0, 1]], BenchConfig(str(tmp_path)))
    assert "no meta/episodes" in missing["mixing_reference_error"] and "mixing_iid" not in missing


@pytest.fixture(scope="module")
def converted_small(small_lerobot_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("ceiling") / "wds"
    convert(ConvertConfig(str(small_lerobot_dataset.root), str(dest), target_shard_bytes=30_000, progress=False))
    return dest


def test_ceiling_decodes_every_frame_of_the_conversion(converted_small: Path) -> None:
    manifest = Manifest.from_json_bytes((converted_small / "manifest.json").read_bytes())
    result = run_ceiling(str(converted_small), processes=2)
    episodes = sum(len(s.episodes) for s in manifest.shards)
    assert result["camera_files"] == episodes * len(manifest.camera_keys)
    # every mini-MP4 frame: the episode's own frames plus its lead-in/trail, counted from the episode metadata
    expected = _mini_mp4_frames(converted_small, manifest)
    assert result["frames"] == expected >= manifest.total_frames * len(manifest.camera_keys)
    record = ceiling_record(BenchConfig(str(converted_small)), str(converted_small), processes=1)
    assert record["loader"] == "decode-ceiling" and record["frames"] == expected and record["processes"] == 1


def _mini_mp4_frames(root: Path, manifest: Manifest) -> int:
    import json
    import tarfile

    total = 0
    for shard in manifest.shards:
        with tarfile.open(root / shard.path) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(m).read())  # type: ignore[union-attr]
                    total += sum(int(c["frames"]) for c in meta["cameras"].values())
    return total


def test_ceiling_refuses_a_broken_conversion(converted_small: Path, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="manifest.json not found"):
        run_ceiling(str(tmp_path))
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(converted_small, broken)
    shard = sorted((broken / "shards").iterdir())[0]
    data = bytearray(shard.read_bytes())
    at = data.index(b'"frames":') + len(b'"frames":')  # the first camera's frame count in an episode's JSON
    digit = chr(data[at])
    data[at] = ord("9" if digit != "9" else "8")  # same length: the tar stays valid, the count is wrong
    shard.write_bytes(bytes(data))
    with pytest.raises(BenchError, match=r"episode_\d+, camera .*: MP4 has \d+ frames, metadata says \d+"):
        run_ceiling(str(broken), processes=1)


def test_guarded_run_returns_records_for_success_and_every_failure(wds_root: Path, tmp_path: Path) -> None:
    ok_cfg = BenchConfig(str(wds_root), batch_size=3, num_workers=0, num_batches=2, warmup=0)
    ok = run_guarded(ok_cfg, timeout_s=300, max_rss_bytes=64 * 2**30)
    assert ok["status"] == "ok" and ok["samples"] == 6
    memory = run_guarded(ok_cfg, timeout_s=300, max_rss_bytes=1)
    assert memory["status"] == "memory" and "RSS" in memory["reason"] and "samples" not in memory
    slow = BenchConfig(str(wds_root), batch_size=3, num_workers=0, num_batches=2, emulate_latency_ms=600_000)
    timeout = run_guarded(slow, timeout_s=5, max_rss_bytes=64 * 2**30)
    assert timeout["status"] == "timeout" and "after 5 s" in timeout["reason"]
    failed = run_guarded(BenchConfig(str(tmp_path / "nope")), timeout_s=300, max_rss_bytes=64 * 2**30)
    assert failed["status"] == "failed" and "nope" in failed["reason"]
    # failures render as rows with their status and reason, never crash the report
    text = render([ok, memory, timeout, failed])
    assert "Runs without a measurement:" in text and "timeout: no result after 5 s" in text


def _bench_args(**over: object) -> argparse.Namespace:
    base = dict(
        source="wds", mode=["single"], num_workers=None, baseline=[], baseline_only=False, lerobot_root=None,
        lance_root=None, source_label=None, emulate_latency_ms=None, emulate_bandwidth_mb_s=None, batching=None,
        batch_size=None, num_batches=None, warmup=None, return_uint8=None, seed=None, device=None, repo_id=None,
        active_episodes=None, rounds=1,
    )  # fmt: skip
    return argparse.Namespace(**(base | over))


def test_cli_builds_streaming_and_both_batchings() -> None:
    with pytest.raises(ValueError, match="--baseline streaming needs --lerobot-root"):
        build_configs(_bench_args(baseline=["streaming"]))
    configs = build_configs(
        _bench_args(baseline=["streaming", "lerobot"], lerobot_root="src", batching=["dataset", "dataloader"])
    )
    assert [(c.loader, c.batching, c.source) for c in configs] == [
        ("lerobot-wds", "dataset", "wds"),
        ("lerobot-wds", "dataloader", "wds"),
        ("lerobot", "dataset", "src"),
        ("lerobot-streaming", "dataset", "src"),
    ]
    assert {c.meta_root for c in configs} == {"src"}


def test_report_keeps_the_dataloader_idiom_and_the_ceiling_apart() -> None:
    def rec(loader: str, batching: str, fps: float, **extra: object) -> dict:
        return {
            "record_version": 1, "created_unix": fps, "loader": loader, "batching": batching, "mode": "single",
            "source_label": "p", "batch_size": 16, "num_workers": 2, "return_uint8": True, "rank": 0,
            "world_size": 1, "frames_per_s_node": fps, "bytes_read": 0, **extra,
        }  # fmt: skip

    records = [rec("lerobot-wds", "dataset", 800.0), rec("lerobot-wds", "dataloader", 500.0)]
    records += [rec("decode-ceiling", "none", 1000.0), rec("lerobot", "dataloader", 200.0)]
    scenarios = merge_scenarios(records)
    assert len(scenarios) == 4
    vs_ceiling = {r["batching"]: r["ratios"]["frames_per_s_node"] for r in ratio_rows(scenarios, "decode-ceiling")}
    assert vs_ceiling == {"dataset": pytest.approx(0.8), "dataloader": pytest.approx(0.5)}
    text = render(records)
    assert "Ours / the decode-only ceiling" in text and "0.80x" in text and "Ours / LeRobotDataset" in text


def test_profile_command_runs_every_loader_and_preset() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["bench-profile", "p480", "--wds", "W", "--src", "S", "--lance", "L", "--out", "O"])
    argv = bench_argv(args)
    assert argv[0] == "W" and argv[argv.index("--out") + 1] == "O" and "--ceiling" in argv
    assert argv[argv.index("--mode") + 1 : argv.index("--mode") + 4] == ["single", "sarm", "window8x1s"]
    assert argv[argv.index("--baseline") + 1 :] == ["lerobot", "streaming", "lancedb"]
    no_lance = bench_argv(parser.parse_args(["bench-profile", "p", "--wds", "W", "--src", "S", "--out", "O"]))
    assert "--lance-root" not in no_lance and "lancedb" not in no_lance
