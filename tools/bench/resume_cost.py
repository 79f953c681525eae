"""``lerobot-wds bench-resume``: what a mid-epoch checkpoint costs and how fast a resumed run gets its first batch.

A job of ``--from R,W`` (ranks x DataLoader workers) is played rank after rank in this process: each rank's
dataset builds batches in place and a ``DataLoader(ds, batch_size=None, num_workers=W)`` hands out
``--batches`` of them; then its ``loader_state_dict`` is taken (timed: what a checkpoint adds to a training
step) and serialised as a checkpoint holds it (``torch.save``; bytes per rank). A resumed rank 0 of ``--to
R',W'`` then loads every rank's state and iterates: seconds from ``load_state_dict`` to its first batch,
elastic (another shape: the rest of the epoch re-planned), exact (the saved shape: the rank's readers skip
what they consumed) and a fresh start of the epoch on the new shape for comparison; and the bytes of a
resumed rank's next state (it carries the epoch's remaining work). Each is run ``--rounds`` times,
interleaved; the medians are printed as one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from typing import Any

import torch
from torch.utils.data import DataLoader

from lerobot_wds.reader.dataset import LeRobotWdsDataset


def _shape(text: str) -> tuple[int, int]:
    try:
        ranks, workers = (int(v) for v in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected RANKS,WORKERS such as 2,2; got {text!r}") from e
    if ranks < 1 or workers < 0:
        raise argparse.ArgumentTypeError(f"ranks must be >= 1 and workers >= 0; got {text!r}")
    return ranks, workers


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from e
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _dataset(args: argparse.Namespace, rank: int, world: int) -> LeRobotWdsDataset:
    return LeRobotWdsDataset(
        args.root, preset=args.preset, batch_size=args.batch_size, seed=args.seed, rank=rank, world_size=world
    )


def save_states(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[int], list[float]]:
    """Runs the saved job; returns every rank's state, its checkpoint bytes and the seconds taking it cost."""
    ranks, workers = args.from_shape
    states, sizes, costs = [], [], []
    for rank in range(ranks):
        ds = _dataset(args, rank, ranks)
        for i, _ in enumerate(DataLoader(ds, batch_size=None, num_workers=workers), 1):
            if i == args.batches:
                break
        t0 = time.perf_counter()
        state = ds.loader_state_dict(args.batches, args.batch_size, workers)
        costs.append(time.perf_counter() - t0)
        buf = io.BytesIO()
        torch.save(state, buf)
        states.append(state)
        sizes.append(buf.tell())
    return states, sizes, costs


def first_batch_s(
    args: argparse.Namespace, states: list[dict[str, Any]], shape: tuple[int, int]
) -> tuple[float, int]:
    """Seconds from loading the states into a fresh rank 0 of ``shape`` to its first batch, and the bytes of
    that rank's state after it (after an elastic resume it carries the epoch's remaining work)."""
    ds = _dataset(args, 0, shape[0])
    t0 = time.perf_counter()
    for state in states:
        ds.load_state_dict(state)
    it = iter(DataLoader(ds, batch_size=None, num_workers=shape[1]))
    next(it)
    took = time.perf_counter() - t0
    buf = io.BytesIO()
    torch.save(ds.loader_state_dict(1, args.batch_size, shape[1]), buf)
    del it
    return took, buf.tell()


def run(args: argparse.Namespace) -> int:
    elastic: list[float] = []
    exact: list[float] = []
    fresh: list[float] = []
    costs: list[float] = []
    sizes: list[int] = []
    resumed_bytes = 0
    for _ in range(args.rounds):
        states, size, cost = save_states(args)
        sizes, costs = size, costs + cost
        took, resumed_bytes = first_batch_s(args, states, args.to_shape)
        elastic.append(took)
        exact.append(first_batch_s(args, states, args.from_shape)[0])
        fresh.append(first_batch_s(args, [], args.to_shape)[0])
    ds = _dataset(args, 0, 1)
    print(
        json.dumps(
            {
                "episodes": ds.num_episodes,
                "frames": ds.num_frames,
                "from": list(args.from_shape),
                "to": list(args.to_shape),
                "batches_before_checkpoint": args.batches,
                "state_bytes_per_rank": sizes,
                "state_s_median": round(statistics.median(costs), 4),
                "state_bytes_after_elastic_resume": resumed_bytes,
                "first_batch_s_elastic_median": round(statistics.median(elastic), 3),
                "first_batch_s_exact_median": round(statistics.median(exact), 3),
                "first_batch_s_fresh_median": round(statistics.median(fresh), 3),
                "rounds": args.rounds,
            }
        )
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``bench-resume`` subcommand."""
    p = subparsers.add_parser(
        "bench-resume",
        help="measure checkpoint state size and time to the first batch of a resumed run",
        description="Measure what a mid-epoch dataset state costs (bytes per rank, seconds to take it) and how "
        "long a resumed rank waits for its first batch, on another shape (elastic) and on the saved one (exact).",
    )
    p.add_argument("root", help="converted root (path or fsspec URL)")
    p.add_argument("--from", dest="from_shape", type=_shape, default=(2, 2), help="saved RANKS,WORKERS (2,2)")
    p.add_argument("--to", dest="to_shape", type=_shape, default=(3, 1), help="resumed RANKS,WORKERS (3,1)")
    p.add_argument(
        "--batches", type=_positive, default=20, help="batches each saved rank takes before its state (20)"
    )
    p.add_argument("--batch-size", type=_positive, default=16, help="samples per batch (16)")
    p.add_argument("--preset", choices=["single", "sarm"], default="single", help="windows (single)")
    p.add_argument("--seed", type=int, default=0, help="the dataset's seed (0)")
    p.add_argument("--rounds", type=_positive, default=3, help="interleaved rounds; medians are printed (3)")
    p.set_defaults(func=run)
