"""Resume state of a reader: what it is, how states merge, and which plan a resumed epoch continues with.

A state (version 2) is what one rank's readers consumed of an epoch::

    {"version", "seed", "epoch", "rank", "world_size", "num_workers",
     "base":      the remainder the epoch's current plan was cut from (None: the epoch's own plan),
     "consumed":  {reader (str): samples yielded},
     "delivered": {reader (str): anchors delivered per segment of its plan (elastic.encode_counts)},
     "rotation":  the reader the next batch comes from (plain DataLoader states)}

Every reader of a rank yields the same quota per epoch and a DataLoader takes batches from its workers
round-robin, so the batches a training loop has seen say how many samples each worker yielded; the
delivery journal (:mod:`journal`) says which visits they came from. On the same ranks x workers topology
a resume is exact: each reader skips what it consumed and the rest of the epoch is bit-identical to the
uninterrupted run. On another topology the states of every rank are merged, what was delivered is taken
out of the epoch (:func:`elastic.remainder`) and the rest is re-planned over the new readers: every
remaining sample exactly once, the next epoch the ordinary epoch of the new topology.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from lerobot_wds.core.format import ShardInfo
from lerobot_wds.reader.errors import OptionError, ResumeError
from lerobot_wds.reader.planning.elastic import (
    decode_counts,
    decode_pieces,
    encode_pieces,
    plan_remainder,
    remainder,
)
from lerobot_wds.reader.planning.splitting import EpisodeRef, SlotPlan, Uneven, episode_refs, hash_ints, plan_epoch

STATE_VERSION = 2
_READ_VERSIONS = (1, 2)  # version 1 (no rank, no deliveries) still resumes on its own topology


def make_state(
    seed: int,
    epoch: int,
    consumed: Mapping[Any, int],
    world_size: int | None = None,
    num_workers: int | None = None,
    *,
    rank: int = 0,
    base: bytes | None = None,
    delivered: Mapping[Any, bytes] | None = None,
) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "seed": seed,
        "epoch": epoch,
        "rank": rank,
        "world_size": world_size,
        "num_workers": num_workers,
        "base": base,
        "consumed": {str(w): int(n) for w, n in consumed.items()},
        "delivered": {str(w): bytes(b) for w, b in (delivered or {}).items()},
    }


def loader_consumed(batches_seen: int, batch_size: int, workers: int, quota: int) -> dict[int, int]:
    """Samples each worker yielded after a DataLoader handed out ``batches_seen`` batches of an epoch.

    Worker ``w`` produced batches ``w, w + N, ...`` (in-order round-robin over ``N`` workers).
    """
    consumed = {}
    for w in range(workers):
        batches = (batches_seen - w + workers - 1) // workers if batches_seen > w else 0
        consumed[w] = min(quota, batches * batch_size)
    return consumed


@dataclass
class Pending:
    """States of one epoch loaded so far (one per rank, or per worker from a StatefulDataLoader), merged."""

    epoch: int
    world_size: int | None
    num_workers: int | None
    base: bytes | None
    rotation: int = 0
    consumed: dict[tuple[int | None, int], int] = field(default_factory=dict)  # (rank, reader); rank None: v1
    delivered: dict[tuple[int, int], bytes] = field(default_factory=dict)


def merge_state(pending: Pending | None, state: Mapping[str, Any], seed: int) -> Pending:
    """Checks ``state`` against this reader (version, seed) and merges it into a pending resume of its epoch.

    States of the same epoch accumulate (every rank's, or every worker's); another epoch replaces the pending one.

    Raises:
        ResumeError: wrong version, a different seed, or a state of the same epoch from another plan.
    """
    version = state.get("version")
    if version not in _READ_VERSIONS:
        raise ResumeError(f"state version {version!r}, expected one of {list(_READ_VERSIONS)}")
    if state.get("seed") != seed:
        raise ResumeError(f"state was saved with seed {state.get('seed')}, this dataset has seed {seed}")
    epoch = int(state["epoch"])
    topo = (state.get("world_size"), state.get("num_workers"))
    base = state.get("base")
    if pending is None or pending.epoch != epoch or not pending.consumed:
        pending = Pending(epoch, topo[0], topo[1], base)
    elif (pending.world_size, pending.num_workers, pending.base) != (*topo, base):
        raise ResumeError(
            f"resume states of epoch {epoch} come from different plans ({pending.world_size} x "
            f"{pending.num_workers} readers and {topo[0]} x {topo[1]}): load the states of one checkpoint"
        )
    rank = int(state["rank"]) if version >= 2 else None
    pending.consumed.update({(rank, int(w)): int(n) for w, n in state["consumed"].items()})
    if rank is not None:
        pending.delivered.update({(rank, int(w)): bytes(b) for w, b in state.get("delivered", {}).items()})
    pending.rotation = int(state.get("rotation") or 0)
    return pending


@dataclass(frozen=True)
class EpochPlanner:
    """Plans an epoch, or what is left of one (``base``), for a topology: the same everywhere."""

    shards: Sequence[ShardInfo]
    seed: int
    shuffle: bool
    uneven: Uneven
    episodes: AbstractSet[int] | None
    ranks_per_node: int | None = None  # node-stable shares (the node-local cache, :mod:`nodes`); None: off

    def nodes(self, world_size: int) -> int | None:
        """Nodes of the job when shares are node-stable, else None.

        Raises:
            OptionError: ``ranks_per_node`` does not divide the world size.
        """
        if self.ranks_per_node is None:
            return None
        if world_size % self.ranks_per_node:
            raise OptionError(
                f"ranks_per_node={self.ranks_per_node} does not divide the world size {world_size}; every node "
                "needs the same number of ranks"
            )
        return max(1, world_size // self.ranks_per_node)

    def plan(self, epoch: int, world_size: int, num_workers: int, base: bytes | None) -> list[list[SlotPlan]]:
        """The epoch's plan (``base`` None), or its remaining pieces ``base`` cut over this topology."""
        if base is None:
            return plan_epoch(
                self.shards,
                seed=self.seed,
                epoch=epoch,
                shuffle=self.shuffle,
                world_size=world_size,
                num_workers=num_workers,
                uneven=self.uneven,
                episodes=self.episodes,
                nodes=self.nodes(world_size),
            )
        refs: dict[int, EpisodeRef] = {r.episode: r for s in self.shards for r in episode_refs(s)}
        return plan_remainder(decode_pieces(base, refs), world_size, num_workers, self.uneven)


@dataclass(frozen=True)
class Continuation:
    """How an epoch goes on for one topology: the plan's ``base``, the samples each reader of this rank skips
    and the DataLoader rotation (exact resume), or a fresh remainder plan (elastic: no skips)."""

    base: bytes | None
    skips: Mapping[int, int]
    rotation: int
    elastic: bool

    def key(self, epoch: int, world_size: int, num_workers: int) -> int:
        """Names the plan (journal headers): epoch, topology and base."""
        return hash_ints(epoch, world_size, num_workers, zlib.crc32(self.base or b"")) & 0x7FFFFFFFFFFFFFFF


FRESH = Continuation(None, {}, 0, False)


def continuation(
    pending: Pending | None, planner: EpochPlanner, epoch: int, rank: int, world: int, workers: int
) -> Continuation:
    """How ``epoch`` goes on for readers ``rank`` of ``world`` x ``workers`` after the states in ``pending``.

    Raises:
        ResumeError: another topology while a rank's (or a reader's) state is missing, or a version 1 state.
    """
    if pending is None or pending.epoch != epoch:
        return FRESH
    if pending.base is None and not any(pending.consumed.values()):
        return FRESH  # nothing of the epoch consumed yet: its ordinary plan, on any topology
    if (pending.world_size, pending.num_workers) == (world, workers):
        mine = {w: n for (r, w), n in pending.consumed.items() if r in (rank, None)}
        return Continuation(pending.base, mine, pending.rotation, False)
    old_world, old_workers = pending.world_size, pending.num_workers
    if old_world is None or old_workers is None:
        raise ResumeError(f"a resume state of epoch {epoch} names no topology; it cannot be re-planned")
    if any(r is None for r, _ in pending.consumed):
        raise ResumeError(
            f"resume state of epoch {epoch} was saved by {old_world} ranks x {old_workers} workers without "
            "delivery records (version 1): resume it on that topology, or at the next epoch"
        )
    readers = [(r, w) for r in range(old_world) for w in range(old_workers)]
    where = f"resuming epoch {epoch} of {old_world} ranks x {old_workers} workers on {world} x {workers}"
    missing = [f"rank {r} reader {w}" for r, w in readers if (r, w) not in pending.consumed]
    if missing:
        more = " ..." if len(missing) > 6 else ""
        raise ResumeError(f"{where} needs every rank's state; missing {', '.join(missing[:6])}{more}")
    unrecorded = [f"rank {r} reader {w}" for r, w in readers if (r, w) not in pending.delivered]
    if unrecorded:
        raise ResumeError(
            f"{where}: the states of {', '.join(unrecorded[:6])} hold no delivery record (saved by a process "
            "that had not read this epoch); resume on the saved topology, or at the next epoch"
        )
    old = planner.plan(epoch, old_world, old_workers, pending.base)
    slots = [old[r][w].segments for r, w in readers]
    counts = [
        decode_counts(pending.delivered[k]) if k in pending.delivered else [0] * len(s)
        for k, s in zip(readers, slots, strict=True)
    ]
    return Continuation(encode_pieces(remainder(slots, counts)), {}, 0, True)
