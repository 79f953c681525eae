"""Plots frames/s (per node) against DataLoader workers, one line per (loader, mode, source label).

matplotlib is the optional dependency ``plot`` (``pip install 'lerobot-wds[plot]'``); it is imported only
here, with the Agg backend so no display is needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lerobot_wds.tools.bench_report import merge_scenarios


def plot_workers(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Writes a PNG of frames/s vs num_workers; returns its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError(f"plotting needs matplotlib (pip install 'lerobot-wds[plot]'): {e}") from e
    lines: dict[tuple[str, str, str, int], list[tuple[int, float]]] = {}
    for s in merge_scenarios(records):
        key = (s["loader"], s["mode"], s["source_label"], s["batch_size"])
        lines.setdefault(key, []).append((int(s["num_workers"]), s["metrics"]["frames_per_s_node"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (loader, mode, label, batch), points in sorted(lines.items()):
        points.sort()
        style = "-o" if loader == "lerobot-wds" else "--s"
        ax.plot([p[0] for p in points], [p[1] for p in points], style, label=f"{loader} {mode} {label} b{batch}")
    ax.set_xticks(sorted({p[0] for points in lines.values() for p in points}))
    ax.set_xlabel("DataLoader workers")
    ax.set_ylabel("camera frames / s (per node)")
    ax.set_title("Loader throughput vs workers")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
