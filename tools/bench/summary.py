"""Summarising benchmark records: the reported metrics of a record, and scenarios merged over runs and ranks."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

# metric -> (column title, format, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "frames_per_s_node": ("frames/s", "{:.1f}", True),
    "samples_per_s": ("samples/s", "{:.1f}", True),
    "setup_s": ("setup_s", "{:.2f}", False),
    "first_batch_latency_s": ("first_s", "{:.2f}", False),
    "p50_sample_latency_ms": ("p50_ms", "{:.2f}", False),
    "p95_sample_latency_ms": ("p95_ms", "{:.2f}", False),
    "p99_sample_latency_ms": ("p99_ms", "{:.2f}", False),
    "wallclock_s": ("wall_s", "{:.1f}", False),
    "peak_rss_mb": ("rss_MB", "{:.0f}", False),
    "bytes_read_mb": ("read_MB", "{:.1f}", False),
    "distinct_episodes_per_batch": ("eps/batch", "{:.1f}", True),
    "min_distinct_episodes_per_batch": ("min_eps", "{:.0f}", True),
    "same_episode_pair_rate": ("same_pair", "{:.3f}", False),
    "lag1_episode_autocorr": ("lag1", "{:.2f}", False),
    "same_task_pair_rate": ("same_task", "{:.3f}", False),
    "episode_index_std": ("ep_std", "{:.1f}", True),
    "iid_distinct_episodes_per_batch": ("iid_eps", "{:.1f}", True),
    "iid_same_task_pair_rate": ("iid_task", "{:.3f}", False),
    "iid_episode_index_std": ("iid_std", "{:.1f}", True),
    "peak_worker_rss_mb": ("wrk_rss_MB", "{:.0f}", False),
    "decoder_hit_rate": ("dec_hit", "{:.2f}", True),
    "frame_cache_hit_rate": ("frame_hit", "{:.2f}", True),
}
SCENARIO = (
    "loader",
    "batching",
    "mode",
    "source_label",
    "batch_size",
    "num_workers",
    "return_uint8",
    "world_size",
)
PAIR = ("mode", "batch_size", "num_workers", "return_uint8", "world_size")
MIXING = (
    "distinct_episodes_per_batch",
    "min_distinct_episodes_per_batch",
    "same_episode_pair_rate",
    "lag1_episode_autocorr",
)
DIVERSITY = ("same_task_pair_rate", "episode_index_std")


def scenario_value(record: Mapping[str, Any], key: str) -> Any:
    """A scenario field of a record; ``batching`` of records written before it was recorded is inferred."""
    if key == "batching" and key not in record:
        return "dataset" if record["loader"] == "lerobot-wds" else "dataloader"
    if key == "world_size" and key not in record:
        return 1
    return record[key]


def metric_values(record: Mapping[str, Any]) -> dict[str, float]:
    """The reported metrics of one record (derived ones included); NaN where a loader has no such number."""
    cache = record.get("video_decoder_cache") or {}
    out = {k: float(record.get(k, math.nan)) for k in METRICS}
    out["bytes_read_mb"] = float(record.get("bytes_read", math.nan)) / 1e6
    mix = record.get("mixing") or {}
    for key in (*MIXING, *DIVERSITY):
        out[key] = float(mix.get(key, math.nan))
    iid = record.get("mixing_iid") or {}
    for key in ("distinct_episodes_per_batch", *DIVERSITY):
        out[f"iid_{key}"] = float(iid.get(key, math.nan))
    out["peak_worker_rss_mb"] = float(record.get("peak_worker_rss_mb", math.nan))
    out["decoder_hit_rate"] = float(cache.get("hit_rate", math.nan))
    out["frame_cache_hit_rate"] = float((record.get("frame_cache") or {}).get("hit_rate", math.nan))
    return out


def _median(values: Sequence[float]) -> float:
    """Median of the runs that have the metric (a failed run or a peer without it gives NaN)."""
    present = [v for v in values if not math.isnan(v)]
    return statistics.median(present) if present else math.nan


def merge_scenarios(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Groups records by scenario: the median of repeated runs per rank, then the mean over ranks."""
    groups: dict[tuple, dict[int, list[Mapping[str, Any]]]] = {}
    for r in records:
        groups.setdefault(tuple(scenario_value(r, k) for k in SCENARIO), {}).setdefault(int(r["rank"]), []).append(
            r
        )
    merged = []
    for key, by_rank in groups.items():
        per_rank = []
        for runs in by_rank.values():
            values = [metric_values(r) for r in runs]
            per_rank.append({m: _median([v[m] for v in values]) for m in METRICS})
        avg = {m: sum(v[m] for v in per_rank) / len(per_rank) for m in METRICS}
        n_runs = min(len(v) for v in by_rank.values())
        readers = sorted({str(r.get("versions", {}).get("reader_sha256")) for rs in by_rank.values() for r in rs})
        statuses = sorted({str(r.get("status", "ok")) for rs in by_rank.values() for r in rs})
        counts = {"nodes": len(by_rank), "runs": n_runs, "metrics": avg, "readers": readers, "status": statuses}
        merged.append(dict(zip(SCENARIO, key, strict=True)) | counts)
    return sorted(
        merged,
        key=lambda s: tuple(str(s[k]) for k in ("mode", "source_label", "num_workers", "loader", "batching")),
    )
