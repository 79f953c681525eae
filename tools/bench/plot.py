"""Plots frames/s (per node) against DataLoader workers, one line per (loader, mode, source label).

matplotlib is the optional dependency ``plot`` (``pip install 'lerobot-wds[plot]'``); it is imported only
here, with the Agg backend so no display is needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lerobot_wds.tools.bench.summary import merge_scenarios
from lerobot_wds.tools.errors import BenchError


def plot_workers(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Writes a PNG of frames/s vs num_workers; returns its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise BenchError(f"plotting needs matplotlib (pip install 'lerobot-wds[plot]'): {e}") from e
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
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_mixing(records: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Writes a PNG of frames/s against batch mixing (distinct episodes per batch), one panel per mode.

    Each point is a scenario (loader, source label); its label carries the largest worker's RSS, so the
    trade of memory for mixing and speed reads off one figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in merge_scenarios(records) if "distinct_episodes_per_batch" in s["metrics"]]
    modes = sorted({s["mode"] for s in scenarios})
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4.2), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        for s in (s for s in scenarios if s["mode"] == mode):
            m = s["metrics"]
            x, y = m["distinct_episodes_per_batch"], m["frames_per_s_node"]
            rss = m.get("peak_worker_rss_mb", float("nan"))
            ours = s["loader"] == "lerobot-wds"
            ax.plot([x], [y], "o" if ours else "s", color="C0" if ours else "C3")
            name = s["source_label"] if ours else s["loader"]
            ax.annotate(
                f"{name}\n{rss:.0f} MB/worker" if rss == rss else name,
                (x, y),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, 4),
            )
        ax.set_title(mode)
        ax.set_xlabel("distinct episodes per batch")
        ax.set_ylabel("camera frames / s (per node)")
        ax.grid(True, alpha=0.3)
    return _save(fig, plt, path)
