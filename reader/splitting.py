"""Pure epoch planning: which shards each (rank, worker) reads and how many samples it yields.

Every rank computes the same plan from the manifest: the shard list is shuffled by (seed, epoch) identically
everywhere, assigned to ranks balanced by frame count (longest-first greedy; reading order stays shuffled),
then within each rank to its workers the same way. Every reader ("slot" = rank x worker) then yields exactly
the same number of samples, ``quota``, so every rank yields the same number of samples and batches per epoch
and DDP never hangs:

- ``uneven="pad"`` (default): quota = the largest slot's frame count; smaller slots read their own shards
  again from the start (a minimal deterministic set of repeats) until they reach it. No frame is dropped.
- ``uneven="trim"``: quota = the smallest slot's frame count; larger slots stop early. No frame repeats.

Fewer shards than slots is an error: a slot without shards cannot produce data; convert with smaller shards
or use fewer DataLoader workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

Uneven = Literal["pad", "trim"]


@dataclass(frozen=True)
class ShardRef:
    """The part of a manifest shard entry that planning needs."""

    path: str
    frames: int


@dataclass(frozen=True)
class SlotPlan:
    """What one reader does in one epoch: its shards in reading order and how many samples it yields."""

    shards: tuple[ShardRef, ...]
    frames: int
    quota: int


def epoch_rng(seed: int, epoch: int, *salt: int) -> random.Random:
    """Returns a Random seeded only from (seed, epoch, salt...), never from pid or time."""
    return random.Random(hash_ints(seed, epoch, *salt))


def hash_ints(*values: int) -> int:
    """Mixes integers into a 64-bit seed deterministically across processes (no PYTHONHASHSEED)."""
    h = 0xCBF29CE484222325
    for v in values:
        for byte in int(v).to_bytes(16, "little", signed=True):
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def shuffled_shards(shards: Sequence[ShardRef], seed: int, epoch: int, shuffle: bool) -> list[ShardRef]:
    """Returns the shard list in this epoch's order: shuffled by (seed, epoch) or unchanged."""
    order = list(shards)
    if shuffle:
        epoch_rng(seed, epoch, 0).shuffle(order)
    return order


def balance(items: Sequence[ShardRef], bins: int) -> list[list[ShardRef]]:
    """Splits items into ``bins`` bins of near-equal frame totals, each bin keeping the input order.

    Longest-processing-time greedy: items by decreasing frames (ties keep input order, so the epoch's shuffle
    still varies the assignment of equal-sized shards) each go to the least loaded bin (lowest index on ties).
    Keeping the input order inside every bin preserves the epoch's shuffle (and, unshuffled, episode order).
    """
    position = {id(item): i for i, item in enumerate(items)}
    load = [0] * bins
    chosen: list[list[ShardRef]] = [[] for _ in range(bins)]
    for item in sorted(items, key=lambda it: -it.frames):
        b = min(range(bins), key=lambda i: (load[i], i))
        chosen[b].append(item)
        load[b] += item.frames
    return [sorted(c, key=lambda it: position[id(it)]) for c in chosen]


def plan_epoch(
    shards: Sequence[ShardRef],
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    world_size: int,
    num_workers: int,
    uneven: Uneven = "pad",
) -> list[list[SlotPlan]]:
    """Plans one epoch for every rank and worker; returns ``plan[rank][worker]``.

    Raises:
        ValueError: on an unknown ``uneven`` policy or fewer non-empty shards than ranks x workers.
    """
    if uneven not in get_args(Uneven):
        raise ValueError(f"uneven={uneven!r}; expected one of {get_args(Uneven)}")
    nonempty = [s for s in shards if s.frames > 0]
    slots = world_size * num_workers
    if len(nonempty) < slots:
        raise ValueError(
            f"{len(nonempty)} non-empty shards cannot feed {world_size} ranks x {num_workers} workers = {slots} "
            "readers; convert with smaller shards or use fewer DataLoader workers"
        )
    order = shuffled_shards(nonempty, seed, epoch, shuffle)
    per_rank = balance(order, world_size)
    per_slot = [balance(rank_shards, num_workers) for rank_shards in per_rank]
    frames = [[sum(s.frames for s in w) for w in r] for r in per_slot]
    flat = [f for r in frames for f in r]
    quota = max(flat) if uneven == "pad" else min(flat)
    return [
        [SlotPlan(tuple(w), f, quota) for w, f in zip(r, fr, strict=True)]
        for r, fr in zip(per_slot, frames, strict=True)
    ]


def samples_per_rank(plan: list[list[SlotPlan]]) -> int:
    """Returns how many samples every rank yields in the planned epoch (identical on all ranks)."""
    return sum(s.quota for s in plan[0])
