"""Measures the reader's shuffle quality against its buffer sizes and memory, on a real converted root.

Metrics of the emitted episode-index sequence: the rate of consecutive samples from the same episode (an
i.i.d. shuffle gives about 1 / episodes), the lag-1 autocorrelation of the episode index (0 when ordering
carries no information), and the mean distance in the stream between consecutive frames of one episode,
relative to the stream length. Memory: peak decoded-frame cache bytes of the run. Prints a table and writes JSON.

Usage: ``python -m lerobot_wds.tools.shuffle_quality ROOT --active 1,4,8,16 --buffer 0,8 --out q.json``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from lerobot_wds.reader.dataset import LeRobotWdsDataset
from lerobot_wds.tools.mixing import lag1_autocorr, same_episode_rate


@dataclass(frozen=True)
class Quality:
    """Shuffle metrics of one run."""

    active_episodes: int
    episode_buffer: int
    shuffle: bool
    samples: int
    same_episode_rate: float
    lag1_autocorr: float
    mean_gap_fraction: float
    peak_frame_cache_mb: float
    decoded_frames: int


def mean_gap_fraction(episodes: Sequence[int]) -> float:
    """Mean stream distance between consecutive samples of the same episode, divided by the stream length."""
    last: dict[int, int] = {}
    gaps: list[int] = []
    for i, e in enumerate(episodes):
        if e in last:
            gaps.append(i - last[e])
        last[e] = i
    return sum(gaps) / len(gaps) / len(episodes) if gaps else 0.0


def measure(root: str, active: int, buffer: int, shuffle: bool = True, seed: int = 0) -> Quality:
    """Iterates one epoch of ``root`` in this process and returns its shuffle metrics."""
    ds = LeRobotWdsDataset(
        root, shuffle=shuffle, seed=seed, active_episodes=active, episode_buffer=buffer, return_uint8=True
    )
    eps = [int(s["episode_index"]) for s in ds]
    stats = ds.stats()
    return Quality(
        active_episodes=active,
        episode_buffer=buffer,
        shuffle=shuffle,
        samples=len(eps),
        same_episode_rate=round(same_episode_rate(eps), 4),
        lag1_autocorr=round(lag1_autocorr([float(e) for e in eps]), 4),
        mean_gap_fraction=round(mean_gap_fraction(eps), 4),
        peak_frame_cache_mb=round(stats["frames"]["peak_cost"] / 2**20, 2),
        decoded_frames=int(stats["decoded_frames"]),
    )


def render(rows: Sequence[Quality]) -> str:
    """Renders results as a Markdown table."""
    cols = ["shuffle", "active", "ep buffer", "samples", "same-ep rate", "lag-1 autocorr", "gap/len",
            "peak cache MB", "decoded"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for q in rows:
        lines.append(
            f"| {q.shuffle} | {q.active_episodes} | {q.episode_buffer} | {q.samples} | {q.same_episode_rate} | "
            f"{q.lag1_autocorr} | {q.mean_gap_fraction} | {q.peak_frame_cache_mb} | {q.decoded_frames} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--active", default="1,2,4,8,16", help="comma-separated active_episodes values")
    parser.add_argument("--buffer", default="0,8", help="comma-separated episode_buffer values")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args(argv)
    rows = [measure(args.root, 1, 0, shuffle=False, seed=args.seed)]
    for buffer in (int(b) for b in args.buffer.split(",")):
        for active in (int(a) for a in args.active.split(",")):
            rows.append(measure(args.root, active, buffer, seed=args.seed))
    print(render(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    from lerobot_wds.tools.process_exit import run_main

    run_main(main)
