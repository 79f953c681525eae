"""Pure epoch planning by episode: which anchors each (rank, worker) yields and how many samples it yields.

Every rank computes the same plan from the manifest. The shard list is shuffled by (seed, epoch) identically
everywhere, its episodes are laid end to end (a shard's episodes stay consecutive, in their order), the
sequence is rotated to a random episode start, and cut into ``slots = world_size x num_workers`` contiguous
pieces of equal frame counts (within one frame): a cut may fall inside an episode, whose anchors are then
split between two readers (both read that episode; windows still reach its whole video). So any conversion
feeds any number of readers >= 1, each reader's reads are runs of consecutive episodes of a shard, and
every reader yields exactly the same number of samples, ``quota``, so DDP never hangs:

- ``uneven="pad"`` (default): quota = the largest slot's frames; a smaller slot (one frame short at most)
  repeats its first anchors. No frame is dropped.
- ``uneven="trim"``: quota = the smallest slot's frames; larger slots stop one frame early. No frame repeats.

A reader that owns all of a shard's episodes reads it whole; otherwise it reads its episodes' byte ranges
(:mod:`fetch`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal, get_args

from lerobot_wds.core.format import ShardInfo
from lerobot_wds.reader.errors import OptionError
from lerobot_wds.reader.planning.nodes import NODE_SALT, SHARE_EPOCH, node_pieces

Uneven = Literal["pad", "trim"]


@dataclass(frozen=True)
class EpisodeRef:
    """An episode as planning sees it: its shard, index, frame count and position in the shard's order."""

    shard: str
    episode: int
    frames: int
    position: int  # index of the episode inside its shard


@dataclass(frozen=True)
class Segment:
    """Anchors ``[lo, hi)`` of one episode, yielded by one reader: a *visit*.

    ``order`` (``(first, last)``) restricts it to the visit's anchors at positions ``[first, last)`` of the order
    the scheduler serves the whole visit in (a pure function of the visit, see :mod:`pool`): what an elastic
    resume re-plans (:mod:`elastic`). None: every anchor of the visit.
    """

    ref: EpisodeRef
    lo: int
    hi: int
    order: tuple[int, int] | None = None

    @property
    def frames(self) -> int:
        return self.hi - self.lo if self.order is None else self.order[1] - self.order[0]

    @property
    def visit(self) -> tuple[int, int]:
        """The visit's key: (episode, first anchor). Unique in an epoch's plan."""
        return (self.ref.episode, self.lo)


@dataclass(frozen=True)
class SlotPlan:
    """What one reader does in one epoch: its segments in reading order and how many samples it yields."""

    segments: tuple[Segment, ...]
    frames: int
    quota: int


def episode_refs(shard: ShardInfo) -> tuple[EpisodeRef, ...]:
    """A manifest shard's episodes as planning items, in the shard's order."""
    return tuple(EpisodeRef(shard.path, e.episode, e.frames, i) for i, e in enumerate(shard.extents))


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


def epoch_sequence(
    shards: Sequence[ShardInfo], seed: int, epoch: int, shuffle: bool, keep: AbstractSet[int] | None = None
) -> list[EpisodeRef]:
    """The epoch's episode sequence: shards shuffled by (seed, epoch), then rotated to a random episode.

    ``keep`` restricts it to those episodes (None: all).
    """
    order = list(shards)
    if shuffle:
        epoch_rng(seed, epoch, 0).shuffle(order)
    seq = [e for s in order for e in episode_refs(s) if e.frames > 0 and (keep is None or e.episode in keep)]
    if shuffle and seq:
        r = epoch_rng(seed, epoch, 3).randrange(len(seq))
        seq = seq[r:] + seq[:r]
    return seq


def cut(seq: Sequence[EpisodeRef], slots: int) -> list[list[Segment]]:
    """Cuts the anchors of ``seq`` (laid end to end) into ``slots`` contiguous pieces of equal frame counts."""
    total = sum(e.frames for e in seq)
    bounds = [k * total // slots for k in range(slots + 1)]
    pieces: list[list[Segment]] = [[] for _ in range(slots)]
    start = 0
    k = 0
    for ep in seq:
        end = start + ep.frames
        while bounds[k + 1] <= start and k + 1 < slots:
            k += 1
        for j in range(k, slots):
            if bounds[j] >= end:
                break
            lo, hi = max(start, bounds[j]), min(end, bounds[j + 1])
            if lo < hi:
                pieces[j].append(Segment(ep, lo - start, hi - start))
        start = end
    return pieces


def plan_epoch(
    shards: Sequence[ShardInfo],
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    world_size: int,
    num_workers: int,
    uneven: Uneven = "pad",
    episodes: AbstractSet[int] | None = None,
    nodes: int | None = None,
) -> list[list[SlotPlan]]:
    """Plans one epoch for every rank and worker; returns ``plan[rank][worker]`` (slot = rank-major).

    ``episodes``: plan only those episodes (None: all); splitting and quotas follow from their frames.
    ``nodes``: node-stable shares (:mod:`nodes`): each of ``nodes`` groups of consecutive ranks reads the same
    episodes every epoch; None: the whole sequence is cut anew every epoch.

    Raises:
        ValueError: on an unknown ``uneven`` policy or fewer frames than ranks x workers.
    """
    if uneven not in get_args(Uneven):
        raise OptionError(f"uneven={uneven!r}; expected one of {get_args(Uneven)}")
    slots = world_size * num_workers
    seq = epoch_sequence(shards, seed, epoch, shuffle, episodes)
    total = sum(e.frames for e in seq)
    if total < slots:
        raise OptionError(
            f"the dataset has {total} frames, fewer than {world_size} ranks x {num_workers} workers = {slots} "
            "readers; use fewer DataLoader workers"
        )
    if nodes is None:
        pieces = cut(seq, slots)
    else:
        shares = cut(epoch_sequence(shards, seed, SHARE_EPOCH, shuffle, episodes), nodes)
        rngs = [epoch_rng(seed, epoch, NODE_SALT, n) for n in range(nodes)] if shuffle else None
        pieces = node_pieces(shares, rngs, slots)
    frames = [sum(s.frames for s in p) for p in pieces]
    quota = max(frames) if uneven == "pad" else min(frames)
    flat = [SlotPlan(tuple(p), f, quota) for p, f in zip(pieces, frames, strict=True)]
    return [flat[r * num_workers : (r + 1) * num_workers] for r in range(world_size)]


def episode_selection(shards: Sequence[ShardInfo], episodes: Sequence[int]) -> tuple[frozenset[int], int]:
    """Checks an ``episodes=`` selection against the manifest; returns it as a set and its frame count.

    Raises:
        ValueError: an episode the manifest does not hold.
    """
    keep = frozenset(int(e) for e in episodes)
    known = {e for s in shards for e in s.episodes}
    missing = sorted(keep - known)
    if missing:
        raise ValueError(f"episodes={missing[:10]} are not in the manifest (it holds {len(known)} episodes)")
    return keep, sum(x.frames for s in shards for x in s.extents if x.episode in keep)
