"""A profile's comparison as one Markdown table: every loader and preset, with ratios, mixing against i.i.d.,
worker memory, first batch and the share of the decode-only ceiling. Reads merged scenarios only."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lerobot_wds.tools.bench.summary import merge_scenarios

ROW_ORDER = {
    ("lerobot-wds", "dataset"): "ours (batches in the dataset)",
    ("lerobot-wds", "dataloader"): "ours, plain `DataLoader(ds, batch_size=16)`",
    ("lerobot", "dataloader"): "LeRobotDataset",
    ("lerobot-lancedb", "dataloader"): "lerobot-lancedb",
    ("lerobot-streaming", "dataloader"): "StreamingLeRobotDataset",
}
HEAD = (
    "| mode | batch | loader | status | frames/s | x LeRobotDataset | x lancedb | x streaming | % of ceiling "
    "| distinct eps / batch (iid) | fewest distinct in a batch | same-task pairs (iid) | episode-index std (iid) "
    "| largest worker RSS GB | first batch s |"
)


def _num(x: float, fmt: str) -> str:
    return "-" if math.isnan(x) else fmt.format(x)


def _ratio(a: float, b: float) -> str:
    return "-" if math.isnan(a) or math.isnan(b) or not b else f"{a / b:.2f}x"


def _vs_iid(metrics: Mapping[str, float], key: str, fmt: str) -> str:
    return f"{_num(metrics[key], fmt)} ({_num(metrics['iid_' + key], fmt)})"


def markdown_table(records: Sequence[Mapping[str, Any]]) -> str:
    """One row per (mode, loader); the ceiling's frames/s in the heading line of the table."""
    scenarios = merge_scenarios(records)
    by_key = {(s["mode"], s["batch_size"], s["loader"], s["batching"]): s for s in scenarios}
    ceiling = next((s for s in scenarios if s["loader"] == "decode-ceiling"), None)
    ceiling_fps = ceiling["metrics"]["frames_per_s_node"] if ceiling else math.nan
    lines = [f"Decode-only ceiling: {_num(ceiling_fps, '{:,.0f}')} frames/s.", "", HEAD, "|---" * 15 + "|"]
    runs = sorted({(s["mode"], s["batch_size"]) for s in scenarios if s["loader"] != "decode-ceiling"})
    for mode, batch in runs:
        peers = {
            name: by_key.get((mode, batch, name, "dataloader"), {})
            .get("metrics", {})
            .get("frames_per_s_node", math.nan)
            for name in ("lerobot", "lerobot-lancedb", "lerobot-streaming")
        }
        for (loader, batching), label in ROW_ORDER.items():
            s = by_key.get((mode, batch, loader, batching))
            if s is None:
                continue
            m = s["metrics"]
            fps = m["frames_per_s_node"]
            ours = loader == "lerobot-wds"
            cells = [
                mode,
                str(batch),
                label.replace("batch_size=16", f"batch_size={batch}"),
                "/".join(s["status"]),
                _num(fps, "{:,.0f}"),
                _ratio(fps, peers["lerobot"]) if ours else "",
                _ratio(fps, peers["lerobot-lancedb"]) if ours else "",
                _ratio(fps, peers["lerobot-streaming"]) if ours else "",
                _num(100 * fps / ceiling_fps, "{:.0f}%") if mode == "single" else "",
                _vs_iid(m, "distinct_episodes_per_batch", "{:.1f}"),
                _num(m["min_distinct_episodes_per_batch"], "{:.0f}"),
                _vs_iid(m, "same_task_pair_rate", "{:.3f}"),
                _vs_iid(m, "episode_index_std", "{:.1f}"),
                _num(m["peak_worker_rss_mb"] / 1024, "{:.2f}"),
                _num(m["first_batch_latency_s"], "{:.2f}"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
