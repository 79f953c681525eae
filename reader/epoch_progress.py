"""A dataset's progress through an epoch: the plan an iteration continues with, and the states that record it.

The one owner of resume for :class:`~lerobot_wds.reader.dataset.LeRobotWdsDataset`: it holds the states loaded
for an epoch (:class:`resume.Pending`), decides how an iteration goes on (exact skip or elastic re-plan,
:func:`resume.continuation`), counts what each reader of this process yielded, journals which visit every
delivered sample came from (:mod:`journal`), and writes states (``state_dict`` inside a reader,
``loader_state`` from the main process of a plain DataLoader).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lerobot_wds.reader.errors import OptionError
from lerobot_wds.reader.journal import Journal, JournalWriter
from lerobot_wds.reader.planning.elastic import encode_counts, span
from lerobot_wds.reader.planning.resume import (
    Continuation,
    EpochPlanner,
    Pending,
    continuation,
    loader_consumed,
    make_state,
    merge_state,
)
from lerobot_wds.reader.planning.splitting import SlotPlan
from lerobot_wds.reader.planning.topology import Topology
from lerobot_wds.reader.scheduling.pool import Anchor


@dataclass(frozen=True)
class Start:
    """How one reader's iteration starts: who it plays, its plan, what it skips, and its delivery callback."""

    topology: Topology  # the reader it plays (a plain DataLoader's worker w may play reader w + rotation)
    plan: SlotPlan
    base: bytes | None  # the remaining work the plan was cut from (None: the epoch's own plan)
    skip: int
    on_deliver: Callable[[Anchor], None]


class EpochProgress:
    """Resume bookkeeping of one dataset object (pickled to workers with it; see the module docstring)."""

    def __init__(self, planner: EpochPlanner, seed: int) -> None:
        self.planner, self.seed = planner, seed
        self.journal = Journal()
        self.pending: Pending | None = None
        self.consumed: dict[int, int] = {}  # reader -> samples yielded, in this process's iteration
        self._last_plans: tuple[tuple[Any, ...], list[SlotPlan]] | None = None

    def load(self, state: Mapping[str, Any]) -> int:
        """Merges a state (one rank's, or one worker's); returns its epoch."""
        self.pending = merge_state(self.pending, state, self.seed)
        return self.pending.epoch

    def going_on(self, epoch: int, topo: Topology) -> Continuation:
        return continuation(self.pending, self.planner, epoch, topo.rank, topo.world_size, topo.num_workers)

    def elastic(self, epoch: int, topo: Topology) -> bool:
        """Whether ``epoch`` goes on re-planned (another topology than the loaded state's) rather than exactly."""
        return self.going_on(epoch, topo).elastic

    def start(self, epoch: int, topo: Topology, in_worker: bool) -> Start:
        """Plans this reader's iteration of ``epoch`` and opens its delivery journal.

        Raises:
            ResumeError: a state that cannot continue on this topology (see :func:`resume.continuation`).
            OptionError: a state that says a reader consumed more than its quota.
        """
        cont = self.going_on(epoch, topo)
        if cont.rotation:
            # a plain DataLoader restarts its round-robin at worker 0: worker w plays the reader the next batch of
            # the interrupted run would have come from, so batches continue in the same order
            topo = replace(topo, worker=(topo.worker + cont.rotation) % topo.num_workers)
        plan = self._plans(epoch, topo, cont)[topo.worker]
        skip = int(cont.skips.get(topo.worker, 0))
        if skip > plan.quota:
            raise OptionError(
                f"resume state says reader {topo.worker} consumed {skip} samples, quota is {plan.quota}"
            )
        if not in_worker and self.pending is not None and self.pending.epoch == epoch:
            # applied in this process: a later iteration of the epoch keeps its plan without skipping again
            self.pending = Pending(epoch, topo.world_size, topo.num_workers, cont.base)
        self.consumed = {topo.worker: skip}
        writer = self.journal.writer(
            topo.worker, epoch, cont.key(epoch, topo.world_size, topo.num_workers), plan.quota
        )
        return Start(topo, plan, cont.base, skip, _deliveries(plan, writer))

    def progress(self, reader: int, n: int) -> None:
        self.consumed[reader] = n

    def state(self, epoch: int, topo: Topology) -> dict[str, Any]:
        """This process's readers' state (``num_workers=0``, or inside a worker as StatefulDataLoader asks)."""
        cont = self.going_on(epoch, topo)
        plans = self._plans(epoch, topo, cont)
        return self._state(epoch, topo, cont, plans, dict(self.consumed))

    def loader_state(self, epoch: int, topo: Topology, batches_seen: int, batch_size: int) -> dict[str, Any]:
        """The state after a plain DataLoader of ``topo.num_workers`` workers handed out ``batches_seen`` batches
        of the plan this epoch goes on with (counted from the start of that plan)."""
        cont = self.going_on(epoch, topo)
        plans = self._plans(epoch, topo, cont)
        consumed = loader_consumed(batches_seen, batch_size, topo.num_workers, plans[0].quota)
        state = self._state(epoch, topo, cont, plans, consumed)
        state["rotation"] = batches_seen % topo.num_workers  # the worker the next batch comes from
        state["batches"] = batches_seen
        return state

    def _plans(self, epoch: int, topo: Topology, cont: Continuation) -> list[SlotPlan]:
        """This rank's readers' plans (the last one kept: a checkpoint every few steps plans once per epoch)."""
        key = (epoch, topo.rank, topo.world_size, topo.num_workers, cont.base)
        if self._last_plans is None or self._last_plans[0] != key:
            self._last_plans = (
                key,
                self.planner.plan(epoch, topo.world_size, topo.num_workers, cont.base)[topo.rank],
            )
        return self._last_plans[1]

    def _state(
        self, epoch: int, topo: Topology, cont: Continuation, plans: list[SlotPlan], consumed: dict[int, int]
    ) -> dict[str, Any]:
        key = cont.key(epoch, topo.world_size, topo.num_workers)
        delivered = {}
        for reader, n in consumed.items():
            ids = self.journal.read(reader, epoch, key, n)
            if ids is not None:  # None: not iterated here yet, a state that resumes on this topology only
                delivered[reader] = encode_counts(np.bincount(ids, minlength=len(plans[reader].segments)).tolist())
        return make_state(
            self.seed,
            epoch,
            consumed,
            topo.world_size,
            topo.num_workers,
            rank=topo.rank,
            base=cont.base,
            delivered=delivered,
        )


def _deliveries(plan: SlotPlan, writer: JournalWriter) -> Callable[[Anchor], None]:
    """Journals each delivered anchor as the index of the plan segment (visit piece) it belongs to."""
    index = {(s.ref.episode, s.lo, span(s)[0]): i for i, s in enumerate(plan.segments)}

    def deliver(anchor: Anchor) -> None:
        ep = anchor.episode
        writer.add(index[(ep.index, ep.anchor_range[0], ep.order[0] if ep.order is not None else 0)])

    return deliver
