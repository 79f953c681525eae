"""Measures the reader's shuffle quality against its buffer sizes and memory, on a real converted root.

Metrics of the emitted episode-index sequence: the rate of consecutive samples from the same episode (an
i.i.d. shuffle gives about 1 / episodes), the lag-1 autocorrelation of the episode index (0 when ordering
carries no information), and the mean distance in the stream between consecutive frames of one episode,
relative to the stream length. Memory: peak decoded-frame cache bytes of the run. Prints a table and writes JSON.

Every bench mode (``single``, ``sarm``, ``window8x1s``) can be measured: ``--modes``; batch metrics (distinct
episodes per batch of ``--batch-size``, same-episode pair rate) come from :mod:`mixing`.

Usage::

    python -m lerobot_wds.tools.bench.shuffle_quality ROOT --modes single,sarm --active 1,4,16,64 --out q.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from lerobot_wds.reader.dataset import LeRobotWdsDataset
from lerobot_wds.tools.bench.mixing import lag1_autocorr, mixing, same_episode_rate
from lerobot_wds.tools.bench.scenarios import MODES


@dataclass(frozen=True)
class Quality:
    """Shuffle metrics of one run."""

    mode: str
    active_episodes: int
    episode_buffer: int
    shuffle: bool
    samples: int
    same_episode_rate: float
    lag1_autocorr: float
    mean_gap_fraction: float
    peak_frame_cache_mb: float
    decoded_frames: int
    distinct_episodes_per_batch: float = 0.0
    same_episode_pair_rate: float = 0.0


def mean_gap_fraction(episodes: Sequence[int]) -> float:
    """Mean stream distance between consecutive samples of the same episode, divided by the stream length."""
    last: dict[int, int] = {}
    gaps: list[int] = []
    for i, e in enumerate(episodes):
        if e in last:
            gaps.append(i - last[e])
        last[e] = i
    return sum(gaps) / len(gaps) / len(episodes) if gaps else 0.0


def measure(
    root: str,
    active: int,
    buffer: int,
    shuffle: bool = True,
    seed: int = 0,
    mode: str = "single",
    batch_size: int = 16,
) -> Quality:
    """Iterates one epoch of ``root`` in this process (windows of bench mode ``mode``) and returns its metrics."""
    probe = LeRobotWdsDataset(root, shuffle=False)
    deltas = MODES[mode].delta_timestamps(probe.camera_keys, probe.fps)
    ds = LeRobotWdsDataset(
        root,
        delta_timestamps=deltas,
        shuffle=shuffle,
        seed=seed,
        active_episodes=active,
        episode_buffer=buffer,
        return_uint8=True,
        batch_size=batch_size,
    )
    batches = [[int(e) for e in b["episode_index"]] for b in ds]
    eps = [e for b in batches for e in b]
    stats = ds.stats()
    mix = mixing(batches)
    return Quality(
        mode=mode,
        active_episodes=active,
        episode_buffer=buffer,
        shuffle=shuffle,
        samples=len(eps),
        same_episode_rate=round(same_episode_rate(eps), 4),
        lag1_autocorr=round(lag1_autocorr([float(e) for e in eps]), 4),
        mean_gap_fraction=round(mean_gap_fraction(eps), 4),
        peak_frame_cache_mb=round(stats["frames"]["peak_cost"] / 2**20, 2),
        decoded_frames=int(stats["decoded_frames"]),
        distinct_episodes_per_batch=mix["distinct_episodes_per_batch"],
        same_episode_pair_rate=mix["same_episode_pair_rate"],
    )


def render(rows: Sequence[Quality]) -> str:
    """Renders results as a Markdown table."""
    cols = [
        "mode",
        "shuffle",
        "active",
        "ep buffer",
        "samples",
        "eps/batch",
        "same-pair",
        "same-ep rate",
        "lag-1 autocorr",
        "gap/len",
        "peak cache MB",
        "decoded",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for q in rows:
        lines.append(
            f"| {q.mode} | {q.shuffle} | {q.active_episodes} | {q.episode_buffer} | {q.samples} | "
            f"{q.distinct_episodes_per_batch} | {q.same_episode_pair_rate} | {q.same_episode_rate} | "
            f"{q.lag1_autocorr} | {q.mean_gap_fraction} | {q.peak_frame_cache_mb} | {q.decoded_frames} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--modes", default="single,sarm,window8x1s", help="comma-separated bench modes")
    parser.add_argument("--active", default="1,4,16,64", help="comma-separated active_episodes values")
    parser.add_argument("--buffer", default="0", help="comma-separated episode_buffer values")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for mode in args.modes.split(","):
        kw = {"seed": args.seed, "mode": mode, "batch_size": args.batch_size}
        rows.append(measure(args.root, 1, 0, shuffle=False, **kw))
        for buffer in (int(b) for b in args.buffer.split(",")):
            for active in (int(a) for a in args.active.split(",")):
                rows.append(measure(args.root, active, buffer, **kw))
    print(render(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    from lerobot_wds.tools.process_exit import run_main

    run_main(main)
