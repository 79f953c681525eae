"""Planning: which episodes go to which shard, and which shards a part converts. Pure functions only.

Every part of an array job recomputes the same plan from the same source and options, so planning must be a
deterministic function of its inputs (no clocks, no pids, no set iteration order).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from lerobot_wds.convert.errors import PlanError


@dataclass(frozen=True)
class EpisodeEstimate:
    """An episode's frame count and estimated output bytes (rows plus its share of each camera file)."""

    episode_index: int
    frames: int
    bytes: int


@dataclass(frozen=True)
class ShardPlan:
    """One planned shard: its index, its episodes in write order and their estimated bytes."""

    index: int
    episodes: tuple[int, ...]
    frames: int
    est_bytes: int


def select_episodes(available: Sequence[int], wanted: Sequence[int] | None) -> list[int]:
    """Returns the episodes to convert in source order; raises PlanError naming any unknown index."""
    if wanted is None:
        return list(available)
    have = set(available)
    missing = sorted(e for e in wanted if e not in have)
    if missing:
        shown = missing[:10]
        raise PlanError(
            f"episodes {shown}{' ...' if len(missing) > 10 else ''} are not in the source "
            f"(it has {len(have)} episodes, indices {min(have, default=None)}..{max(have, default=None)})"
        )
    keep = set(wanted)
    return [e for e in available if e in keep]


def order_episodes(episodes: Sequence[int], order: str, seed: int) -> list[int]:
    """Returns episodes in source order or permuted by ``seed`` (Python's ``random``, stable across versions)."""
    if order == "source":
        return list(episodes)
    if order == "shuffle":
        out = list(episodes)
        random.Random(seed).shuffle(out)
        return out
    raise PlanError(f"order must be one of ['source', 'shuffle'], got {order!r}")


def plan_shards(estimates: Sequence[EpisodeEstimate], target_bytes: int) -> list[ShardPlan]:
    """Packs episodes, in the given order, greedily into shards of at most ``target_bytes`` (estimated).

    A shard is closed when the next episode would push it over the target; an episode larger than the
    target gets a shard of its own. Shard indices are consecutive from 0.
    """
    if target_bytes < 1:
        raise PlanError(f"target_bytes must be >= 1, got {target_bytes}")
    shards: list[ShardPlan] = []
    cur: list[EpisodeEstimate] = []
    cur_bytes = 0
    for est in estimates:
        if cur and cur_bytes + est.bytes > target_bytes:
            shards.append(_shard(len(shards), cur))
            cur, cur_bytes = [], 0
        cur.append(est)
        cur_bytes += est.bytes
    if cur:
        shards.append(_shard(len(shards), cur))
    return shards


def _shard(index: int, eps: list[EpisodeEstimate]) -> ShardPlan:
    return ShardPlan(
        index=index,
        episodes=tuple(e.episode_index for e in eps),
        frames=sum(e.frames for e in eps),
        est_bytes=sum(e.bytes for e in eps),
    )


def select_part(shards: Sequence[ShardPlan], part_index: int, part_count: int) -> list[ShardPlan]:
    """Returns the shards of one part: round-robin (``index % part_count == part_index``) balances sizes."""
    if part_count < 1 or not 0 <= part_index < part_count:
        raise PlanError(f"part must satisfy 0 <= index < count, got {part_index}/{part_count}")
    return [s for s in shards if s.index % part_count == part_index]
