"""End-to-end tests of the benchmark: tiny real runs (local and over the loopback HTTP server), records on disk,
the report's ratios and the baseline's clear error without lerobot. Timing values are never asserted; counts,
shapes and accounting are."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import math
from pathlib import Path

import pytest

from lerobot_wds.core.format import Manifest
from lerobot_wds.tools.bench.records import CSV_NAME, load_records, write_record
from lerobot_wds.tools.bench.report import merge_scenarios, ratio_rows, render
from lerobot_wds.tools.bench.runner import run_bench
from lerobot_wds.tools.bench.scenarios import MODES, BenchConfig
from lerobot_wds.tools.cli import main as cli_main
from lerobot_wds.tools.errors import BenchError

CAMERAS = 2  # shard_factory.RootSpec default
HAS_LEROBOT = importlib.util.find_spec("lerobot") is not None


def test_modes_are_data() -> None:
    fps = 10.0
    assert MODES["single"].delta_timestamps(["a"], fps) is None
    sarm = MODES["sarm"].delta_timestamps(["a", "b"], fps)
    assert sorted(sarm) == ["a", "b", "observation.state"]
    assert [round(d * fps) for d in sarm["a"]] == [-120, -90, -60, -30, 0, 30, 60, 90, 120, -30, -60, -90, -120]
    w8 = MODES["window8x1s"].delta_timestamps(["a"], fps)
    assert w8["a"] == [-7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0, 0.0]
    assert [MODES[m].window_length() for m in ("single", "sarm", "window8x1s")] == [1, 13, 8]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="mode='nope'"):
        BenchConfig("x", mode="nope")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        BenchConfig("x", batch_size=0)
    with pytest.raises(ValueError, match="LeRobotDataset needs a local root"):
        BenchConfig("x", loader="lerobot", emulate_latency_ms=10)


@pytest.mark.parametrize(
    "mode,workers,batching",
    [
        ("window8x1s", 2, "dataset"),
        ("single", 0, "dataset"),
        ("window8x1s", 2, "dataloader"),
        ("single", 1, "dataloader"),
    ],
)
def test_local_run_counts(wds_root: Path, mode: str, workers: int, batching: str) -> None:
    cfg = BenchConfig(
        str(wds_root), mode=mode, batch_size=3, num_workers=workers, num_batches=4, warmup=1, batching=batching
    )
    rec = run_bench(cfg)
    window = MODES[mode].window_length()
    assert rec["batches"] == 4
    assert rec["samples"] == 4 * 3
    assert rec["frames"] == 4 * 3 * CAMERAS * window
    assert rec["frames_per_sample"] == CAMERAS * window
    assert rec["frames_per_s_node"] == pytest.approx(rec["frames"] / rec["measure_s"])
    assert rec["samples_per_s"] == pytest.approx(rec["samples"] / rec["measure_s"])
    assert rec["p50_sample_latency_ms"] <= rec["p95_sample_latency_ms"] <= rec["p99_sample_latency_ms"]
    assert 0 < rec["first_batch_latency_s"] <= rec["wallclock_s"]
    assert rec["peak_rss_mb"] > 0 and rec["bytes_read"] > 0 and rec["bytes_read_method"] == "proc_read_chars"
    cache = rec["video_decoder_cache"]
    # every worker that delivered a batch reported; each opened at least one decoder per camera of an episode
    assert cache["workers"] == (max(1, workers))
    assert cache["misses"] >= CAMERAS and cache["hit_rate"] == cache["hits"] / (cache["hits"] + cache["misses"])
    assert rec["decoded_frames"] >= rec["samples"]


def test_emulated_run_reads_over_http(wds_root: Path) -> None:
    cfg = BenchConfig(
        str(wds_root),
        mode="single",
        batch_size=2,
        num_workers=1,
        num_batches=3,
        warmup=0,
        emulate_latency_ms=5,
        emulate_bandwidth_mb_s=500,
    )
    rec = run_bench(cfg)
    assert (rec["samples"], rec["frames"]) == (6, 6 * CAMERAS)
    assert rec["bytes_read_method"] == "http_server"
    manifest = Manifest.from_json_bytes((wds_root / "manifest.json").read_bytes())
    # at least the manifest and one whole shard went over the wire
    manifest_bytes = len((wds_root / "manifest.json").read_bytes())
    assert rec["bytes_read"] >= min(s.bytes for s in manifest.shards) + manifest_bytes
    assert rec["http_requests"] >= 2


def test_cached_run_records_a_cold_and_a_warm_epoch(wds_root: Path, tmp_path: Path) -> None:
    cfg = BenchConfig(
        str(wds_root),
        batch_size=2,
        num_workers=2,
        warmup=1,
        emulate_latency_ms=5,
        cache_dir=str(tmp_path / "cache"),
        cache_limit=10**8,
    )
    rec = run_bench(cfg)
    manifest = Manifest.from_json_bytes((wds_root / "manifest.json").read_bytes())
    episode_bytes = sum(e.length for s in manifest.shards for e in s.extents)
    cold, warm = rec["epochs"]
    assert (cold["epoch"], warm["epoch"]) == (0, 1)
    assert cold["cache"]["size"] == episode_bytes  # every episode stored once
    # an episode split between the two workers is fetched twice when both miss it at once: at most one
    largest = max(e.length for s in manifest.shards for e in s.extents)
    assert episode_bytes <= cold["remote_bytes"] <= episode_bytes + largest
    assert warm["remote_bytes"] == 0 and warm["http_bytes_sent"] == 0  # the warm epoch never asks the server
    assert warm["cache"]["misses"] == 0 and warm["cache"]["read_bytes"] >= episode_bytes
    assert cold["cache_disk_peak_bytes"] <= 10**8 and warm["frames"] == cold["frames"]
    with pytest.raises(ValueError, match="--cache-dir and --cache-limit go together"):
        BenchConfig(str(wds_root), cache_dir=str(tmp_path))


def test_too_few_batches_is_a_clear_error(wds_root: Path) -> None:
    manifest = Manifest.from_json_bytes((wds_root / "manifest.json").read_bytes())
    cfg = BenchConfig(str(wds_root), batch_size=manifest.total_frames, num_workers=0, num_batches=3, warmup=0)
    with pytest.raises(BenchError, match=r"ended after 1 of 3 batches"):
        run_bench(cfg)


def test_cli_writes_records_and_report(wds_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    argv = [
        "bench",
        str(wds_root),
        "--mode",
        "single",
        "sarm",
        "--num-workers",
        "0,1",
        "--batch-size",
        "2,3",
        "--num-batches",
        "2",
        "--warmup",
        "0",
        "--out",
        str(out),
    ]
    assert cli_main(argv) == 0
    records = load_records(out)
    assert sorted((r["mode"], r["num_workers"], r["batch_size"]) for r in records) == [
        (mode, w, b) for mode in ("sarm", "single") for w in (0, 1) for b in (2, 3)
    ]
    for r in records:
        n = 2 * r["batch_size"]
        assert r["samples"] == n and r["frames"] == n * CAMERAS * MODES[r["mode"]].window_length()
        batches = r["mixing"]
        assert 1 <= batches["min_distinct_episodes_per_batch"] <= batches["distinct_episodes_per_batch"]
    csv_lines = (out / CSV_NAME).read_text().splitlines()
    assert len(csv_lines) == 1 + 8 and "frames_per_s_node" in csv_lines[0]
    capsys.readouterr()
    assert cli_main(["bench-report", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.count("lerobot-wds") == 8 and "No baseline records" in text


def test_report_ratios_pair_matching_scenarios(wds_root: Path, tmp_path: Path) -> None:
    rec = run_bench(BenchConfig(str(wds_root), batch_size=2, num_workers=0, num_batches=2, warmup=0))
    # a baseline record derived from a real one, with known numbers, to check the renderer's arithmetic
    base = copy.deepcopy(rec)
    base.update(loader="lerobot", created_unix=rec["created_unix"] + 1, video_decoder_cache=None)
    base["frames_per_s_node"] = rec["frames_per_s_node"] / 4
    base["peak_rss_mb"] = rec["peak_rss_mb"] * 2
    write_record(tmp_path, rec)
    write_record(tmp_path, base)
    scenarios = merge_scenarios(load_records(tmp_path))
    assert len(scenarios) == 2
    (row,) = ratio_rows(scenarios)
    assert row["ratios"]["frames_per_s_node"] == pytest.approx(4.0)
    assert row["ratios"]["peak_rss_mb"] == pytest.approx(0.5)
    assert math.isnan(row["ratios"]["decoder_hit_rate"])  # the baseline has no such number here
    assert "4.00x" in render(load_records(tmp_path))


def test_report_averages_ranks(wds_root: Path, tmp_path: Path) -> None:
    rec = run_bench(BenchConfig(str(wds_root), batch_size=2, num_workers=0, num_batches=2, warmup=0))
    other = copy.deepcopy(rec)
    other.update(rank=1, created_unix=rec["created_unix"] + 1, frames_per_s_node=rec["frames_per_s_node"] * 3)
    write_record(tmp_path, rec)
    write_record(tmp_path, other)
    (scenario,) = merge_scenarios(load_records(tmp_path))
    assert scenario["nodes"] == 2
    assert scenario["metrics"]["frames_per_s_node"] == pytest.approx(rec["frames_per_s_node"] * 2)


def test_load_records_names_bad_file(tmp_path: Path) -> None:
    (tmp_path / "bench-x.json").write_text(json.dumps({"record_version": 7}))
    with pytest.raises(ValueError, match="bench-x.json: not a benchmark record"):
        load_records(tmp_path)


def test_plot_writes_png(wds_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from lerobot_wds.tools.bench.plot import plot_workers

    for w in (0, 1):
        write_record(
            tmp_path, run_bench(BenchConfig(str(wds_root), num_workers=w, batch_size=2, num_batches=2, warmup=0))
        )
    png = plot_workers(load_records(tmp_path), tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(HAS_LEROBOT, reason="checks the error when lerobot is absent")
def test_baseline_without_lerobot_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"lerobot\[dataset\]==0.6.1"):
        run_bench(BenchConfig(str(tmp_path), loader="lerobot"))


def test_report_takes_median_of_repeats(wds_root: Path, tmp_path: Path) -> None:
    rec = run_bench(BenchConfig(str(wds_root), batch_size=2, num_workers=0, num_batches=2, warmup=0))
    for i, factor in enumerate((1.0, 2.0, 10.0)):
        again = copy.deepcopy(rec)
        again.update(created_unix=rec["created_unix"] + i, frames_per_s_node=rec["frames_per_s_node"] * factor)
        write_record(tmp_path, again)
    (scenario,) = merge_scenarios(load_records(tmp_path))
    assert (scenario["runs"], scenario["nodes"]) == (3, 1)
    assert scenario["metrics"]["frames_per_s_node"] == pytest.approx(rec["frames_per_s_node"] * 2.0)


def test_report_warns_about_mixed_reader_sources(wds_root: Path, tmp_path: Path) -> None:
    rec = run_bench(BenchConfig(str(wds_root), batch_size=2, num_workers=0, num_batches=2, warmup=0))
    other = copy.deepcopy(rec)
    other["created_unix"] += 1
    other["versions"]["reader_sha256"] = "0" * 16
    write_record(tmp_path, rec)
    write_record(tmp_path, other)
    assert "WARNING: 1 scenario(s) merge runs of different reader sources" in render(load_records(tmp_path))


def test_mixing_metrics_known_values() -> None:
    from lerobot_wds.tools.bench.mixing import mixing

    got = mixing([[0, 0, 1, 2], [3, 3, 3, 3]])
    assert got["distinct_episodes_per_batch"] == 2.0  # (3 + 1) / 2
    assert got["same_episode_pair_rate"] == round(7 / 12, 4)  # 1 of 6 pairs, then 6 of 6
    assert mixing([[0, 1], [2, 3]])["lag1_episode_autocorr"] == 0.25  # 0..3: (0.75 - 0.25 + 0.75) / 5
    assert mixing([[5, 5], [5, 5]])["lag1_episode_autocorr"] == 0.0
    assert got["min_distinct_episodes_per_batch"] == 1
    # the fewest over full batches: a worker's short last batch of an epoch is not a mixing failure
    assert mixing([[0, 1, 2, 3], [4, 5, 6, 6], [7]])["min_distinct_episodes_per_batch"] == 3


def test_record_reports_mixing_and_worker_rss(wds_root: Path) -> None:
    rec = run_bench(BenchConfig(str(wds_root), batch_size=4, num_workers=1, num_batches=3, warmup=0))
    mix = rec["mixing"]
    assert 1 <= mix["distinct_episodes_per_batch"] <= 4 and 0 <= mix["same_episode_pair_rate"] <= 1
    assert 0 <= rec["peak_worker_rss_mb"] <= rec["peak_rss_mb"]


@pytest.mark.skipif(importlib.util.find_spec("lerobot_lancedb") is not None, reason="checks the error without it")
def test_lancedb_peer_without_the_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"lerobot-lancedb==0.3.1"):
        run_bench(BenchConfig(str(tmp_path), loader="lerobot-lancedb"))


def test_disk_sampler_counts_a_cache_only_when_it_changed(tmp_path: Path) -> None:
    from lerobot_wds.reader.fetching.cache import CacheConfig, NodeCache
    from lerobot_wds.tools.bench.monitor import DiskSampler

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        assert cache.put(digest, data)
        return digest

    cache = NodeCache(CacheConfig(str(tmp_path / "c"), limit=10_000))
    sampler = DiskSampler(tmp_path / "c")
    put(b"x" * 1000)
    sampler.sample()
    sampler.sample()  # nothing changed: not counted again
    assert (sampler.peak, sampler.counts) == (1000, 1)
    second = put(b"y" * 3000)
    sampler.sample()
    assert (sampler.peak, sampler.counts) == (4000, 2)
    cache.discard(second)
    put(b"z" * 500)
    sampler.sample()
    assert (sampler.peak, sampler.counts) == (4000, 3)  # the peak stays; 1,500 bytes now
    (tmp_path / "c" / "tmp" / ("d" * 64 + ".1.700")).write_bytes(b"w" * 700)  # an entry being written
    sampler.sample()
    sampler.sample()  # counted again while a file is being written: it may grow without changing its folder
    assert (sampler.peak, sampler.counts) == (4000, 5)
