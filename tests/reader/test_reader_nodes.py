"""Node-stable planning (``plan_epoch(nodes=)``, :mod:`nodes`): the same episodes per node every epoch, a new
order and split inside the node, every anchor exactly once per epoch."""

from __future__ import annotations

from collections import Counter

import pytest

from lerobot_wds.core.format import EpisodeExtent, ShardInfo
from lerobot_wds.reader.errors import OptionError
from lerobot_wds.reader.planning.splitting import SlotPlan, plan_epoch


def _shards(n_shards: int, per_shard: int) -> list[ShardInfo]:
    shards, ep = [], 0
    for s in range(n_shards):
        extents = [
            EpisodeExtent(ep + i, 5 + (ep + i) % 7, 100 * i, 100, f"{ep + i:064x}") for i in range(per_shard)
        ]
        ep += per_shard
        frames = sum(e.frames for e in extents)
        shards.append(
            ShardInfo(
                f"shards/{s}.tar", 100 * per_shard + 1024, "0" * 64, [e.episode for e in extents], frames, extents
            )
        )
    return shards


def _anchors(slots: list[SlotPlan]) -> Counter[tuple[int, int]]:
    return Counter((seg.ref.episode, f) for p in slots for seg in p.segments for f in range(seg.lo, seg.hi))


def test_each_node_reads_the_same_episodes_every_epoch_in_a_new_order() -> None:
    shards = _shards(12, 5)
    total = sum(s.frames for s in shards)
    world, workers, per_node = 4, 2, 2  # 2 nodes x 2 ranks x 2 workers
    shares, orders, splits = [], [], []
    for epoch in range(4):
        plan = plan_epoch(
            shards, seed=3, epoch=epoch, shuffle=True, world_size=world, num_workers=workers, nodes=2
        )
        every = _anchors([p for rank in plan for p in rank])
        assert sum(every.values()) == total and set(every.values()) == {1}  # every anchor once per epoch
        nodes = [[p for rank in plan[n * per_node : (n + 1) * per_node] for p in rank] for n in range(2)]
        shares.append([set(_anchors(n)) for n in nodes])
        orders.append([[seg.ref.episode for p in n for seg in p.segments] for n in nodes])
        splits.append([[{seg.ref.episode for seg in p.segments} for p in n] for n in nodes])
        assert max(p.frames for p in every_slot(plan)) - min(p.frames for p in every_slot(plan)) <= 2
    for epoch in range(1, 4):
        assert shares[epoch] == shares[0]  # the same anchors, so the same episodes, on each node
    assert not shares[0][0] & shares[0][1]  # no anchor on two nodes
    for n in range(2):
        assert len({tuple(o[n]) for o in orders}) == 4  # every epoch reads the node's episodes in a new order
        assert len({tuple(map(frozenset, s[n])) for s in splits}) == 4  # and splits them anew among its readers


def every_slot(plan: list[list[SlotPlan]]) -> list[SlotPlan]:
    return [p for rank in plan for p in rank]


def test_one_node_covers_everything_and_nodes_must_divide_the_readers() -> None:
    shards = _shards(4, 3)
    plan = plan_epoch(shards, seed=0, epoch=1, shuffle=True, world_size=2, num_workers=1, nodes=1)
    assert sum(_anchors(every_slot(plan)).values()) == sum(s.frames for s in shards)
    unshuffled = [
        plan_epoch(shards, seed=0, epoch=e, shuffle=False, world_size=2, num_workers=1, nodes=2) for e in range(2)
    ]
    assert unshuffled[0] == unshuffled[1]  # without shuffle nothing moves between epochs
    with pytest.raises(OptionError, match="3 readers .* do not split evenly into 2 nodes"):
        plan_epoch(shards, seed=0, epoch=0, shuffle=True, world_size=3, num_workers=1, nodes=2)
