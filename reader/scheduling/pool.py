"""The anchor scheduler: a pool of open episodes, each serving one decode unit at a time.

Episodes arrive compressed (a few MB each) and are opened into the pool while :mod:`admission` lets them in
(the worker's memory ceiling, the budgets, ``active``): the pool is filled before its first anchor leaves, so
the first batch of a pass mixes like every other. Each anchor comes from an open visit that has not served the
current batch yet, chosen uniformly (by anchors left once no episode waits outside the pool), so a batch holds
as many distinct episodes as the pool has visits, up to the batch size (:mod:`mixing`). Inside a visit, anchors
come unit by unit (units in random order), so each GOP a unit needs is decoded once and its frames are freed
after their last use.

Without an rng (``shuffle=False``) every episode is served in order, frames in order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from lerobot_wds.core.errors import FormatError
from lerobot_wds.reader.decoding.frames import FramePool, Visit
from lerobot_wds.reader.decoding.gops import long_gops
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.reader.parsing.episode import Episode
from lerobot_wds.reader.scheduling.admission import Admission, Cost, decoder_nbytes
from lerobot_wds.reader.scheduling.mixing import DEFAULT_BATCH, warn_pool_bound
from lerobot_wds.reader.scheduling.units import Shape, Unit, cut_units, plan_units, unit_nbytes

RAMP_ANCHORS = 4


@dataclass(frozen=True, eq=False)
class Anchor:
    """One sample to build: the visit, its anchor frame, what its unit needs and what to drop after it."""

    visit: Visit
    frame: int
    needs: Mapping[str, tuple[int, ...]]
    drops: Mapping[str, tuple[int, ...]]
    last: bool  # the visit's last anchor: release it after building

    @property
    def episode(self) -> Episode:
        return self.visit.episode


@dataclass
class _Open:
    visit: Visit
    units: list[Unit]  # remaining units, the current one first
    at: int  # position inside units[0]
    left: int  # anchors left in the visit
    cost: Cost  # its planned memory (admission)


def frame_nbytes(episode: Episode, camera: str) -> int:
    cam = episode.meta.cameras[camera]
    return 3 * cam.width * cam.height


def open_visit(
    episode: Episode,
    vid: int,
    frames: FramePool,
    deltas: Mapping[str, Sequence[int]],
    rng: random.Random | None,
    unit_bytes: int | None = None,
    visit_bytes: int | None = None,
) -> _Open:
    """Plans an episode's units (GOPs from its decoders) in the order they will be served; ``unit_bytes`` is
    the frame memory a unit should stay within so the mixing target fits (see :func:`shapes.choose_shape`).
    ``visit_bytes`` is a visit's share of the worker's memory ceiling (at a pool of one visit per batch sample):
    over long GOPs a unit may fill what its videos and decoders leave of it (more residues per pass).

    ``rng`` is the visit's own generator (None: frame order), so the order a visit serves its anchors in is a
    function of the visit alone, whatever else the pool holds: the delivered anchors of a visit are always a
    prefix of that order, which is what an elastic resume records (:mod:`elastic`). ``episode.order`` keeps a
    piece of that order.
    """
    visit = Visit(episode, vid)
    gops = {cam: frames.gops(visit, cam) for cam in deltas}
    flips = [rng.random() < 0.5 for _ in range(64)] if rng is not None else None
    shape: Shape | None = None if rng is not None else "sequential"
    sizes = {c: frame_nbytes(episode, c) for c in deltas}
    compressed = sum(len(v) for v in episode.videos.values())
    cams = episode.meta.cameras
    long = {c: long_gops(gops[c], episode.length) for c in deltas}
    decoders = sum(decoder_nbytes(cams[c].width, cams[c].height, long[c]) for c in deltas)
    if visit_bytes is not None and any(long.values()):
        unit_bytes = max(unit_bytes or 0, visit_bytes - compressed - decoders)
    _, units = plan_units(
        episode.length,
        deltas,
        gops,
        flips,
        shape=shape,
        anchors=episode.anchors,
        frame_bytes=sizes,
        unit_bytes=unit_bytes,
    )
    if rng is not None:
        rng.shuffle(units)
    if episode.order is not None:
        units = cut_units(units, *episode.order, episode.length, deltas, gops)
    peak = max((unit_nbytes(u, sizes) for u in units), default=0)
    return _Open(visit, units, 0, sum(len(u.anchors) for u in units), Cost(peak, compressed, decoders))


class _Opener:
    """Opens the pass's episodes into the pool while admission lets them in (the mixing rules, :mod:`admission`).

    An episode it opened but could not admit waits (``pending``) until enough of the pool has finished; one whose
    videos cannot be opened is handled by ``errors`` (raised, or skipped and counted).
    """

    def __init__(
        self,
        eps: Iterable[Episode],
        memory: Admission,
        deltas: Mapping[str, Sequence[int]],
        errors: ErrorCounter | None,
        visit_rng: Callable[[Episode], random.Random | None],
        batch: int,
    ) -> None:
        self.it = iter(eps)
        self.batch = batch
        self.memory, self.deltas, self.errors, self.visit_rng = memory, deltas, errors, visit_rng
        self.pending: _Open | None = None
        self.exhausted = False
        self.vid = 0
        bounds = memory.bounds
        # a unit's share of the frame budget (or of half the memory ceiling, when smaller): the target must fit it
        self.unit_bytes = min(memory.budget.base, bounds.memory // 2) // max(1, bounds.target)
        # over long GOPs a unit may fill a visit's share of the ceiling at a pool of one visit per batch sample (a
        # tenth kept for finished visits' frames until their batch is built), unless the user set the frame
        # budget: a pass over the episode then serves more residues, and the pool's headroom above the batch
        # (open_target) gives way first, which costs no batch a distinct episode
        fixed = memory.budget.fixed is not None
        self.visit_bytes = None if fixed else bounds.memory * 9 // 10 // max(batch, DEFAULT_BATCH)

    def fill(self, pool: list[_Open], allowed: int) -> None:
        """Opens visits into ``pool`` up to ``allowed``, while admission lets them in; says once what holds the
        pool below the batch size (batches then hold fewer distinct episodes)."""
        memory = self.memory
        while not self.exhausted and len(pool) < allowed:
            if self.pending is None:
                self.pending = self._next()
                if self.pending is None:
                    return
            bound = memory.blocked_by(self.pending.cost, len(pool))
            if bound is not None:
                # said when batches lose episodes (the pool below the batch), not when it loses headroom
                if bound != "active" and len(pool) < min(self.batch, memory.bounds.target):
                    warn_pool_bound(bound, memory, len(pool), self.pending.cost, self.batch)
                return  # opens once enough of the pool has finished
            pool.append(self.pending)
            memory.add(self.pending.cost)
            self.pending = None

    def _next(self) -> _Open | None:
        """The next episode with anchors, opened (None once the pass has none left)."""
        while True:
            ep = next(self.it, None)
            if ep is None:
                self.exhausted = True
                return None
            if ep.anchor_range[1] <= ep.anchor_range[0]:
                continue
            self.vid += 1
            frames = self.memory.pool
            try:
                return open_visit(
                    ep, self.vid, frames, self.deltas, self.visit_rng(ep), self.unit_bytes, self.visit_bytes
                )
            except FormatError as e:
                frames.release(Visit(ep, self.vid))
                (self.errors or ErrorCounter()).handle(e, "episode", ep.index)


def schedule(
    eps: Iterable[Episode],
    *,
    memory: Admission,
    deltas: Mapping[str, Sequence[int]],
    rng: random.Random | None,
    batch: int = 1,
    errors: ErrorCounter | None = None,
    lookahead: int = 1,
    visit_rng: Callable[[Episode], random.Random] | None = None,
) -> Iterator[Anchor]:
    """Yields every anchor of every episode once (see the module docstring).

    ``memory`` admits visits into the pool (:mod:`admission`, over its frame pool and bounds) and starts a new
    pass here; ``deltas`` maps each camera to its frame offsets; ``batch`` anchors in a row form one batch, whose
    anchors come from distinct visits while the pool has enough. An episode whose videos cannot be opened is
    handled by ``errors`` (raised, or skipped and counted).

    ``lookahead`` is how many yielded anchors may still wait to be built (a batch): a finished visit's frames
    stay reserved until that many further anchors were yielded, because they are decoded when its batch is
    built (each frame is dropped right after the sample that uses it last, see :mod:`assemble`).

    ``visit_rng(episode)`` gives each visit its own generator for the order of its units (with ``rng``; without
    it they come from ``rng``).
    """
    memory.new_pass()
    bounds = memory.bounds
    own = visit_rng if rng is not None and visit_rng is not None else lambda ep: rng
    opener = _Opener(eps, memory, deltas, errors, own, batch)
    pool: list[_Open] = []
    yielded = 0
    served: dict[int, int] = {}  # anchors each visit gave the current batch
    limit = bounds.active if rng is not None else 1
    first = min(limit, bounds.target)  # open before the first anchor: a full first batch
    while True:
        memory.settle(yielded, lookahead)
        # beyond the target the pool grows by one visit every RAMP_ANCHORS anchors (their decoders and first
        # frames then spread over the first batches instead of delaying the first)
        opener.fill(pool, min(limit, first + yielded // RAMP_ANCHORS))
        if not pool:
            return
        if yielded % max(1, batch) == 0:
            served.clear()
        i = _pick(pool, rng, opener.exhausted, served, batch)
        slot = pool[i]
        served[slot.visit.vid] = served.get(slot.visit.vid, 0) + 1
        unit = slot.units[0]
        k = slot.at
        slot.at += 1
        slot.left -= 1
        if slot.at == len(unit.anchors):
            slot.units.pop(0)
            slot.at = 0
        yielded += 1
        if slot.left == 0:
            pool.pop(i)
            memory.finish(slot.cost, yielded)
        drops = {cam: per_anchor[k] for cam, per_anchor in unit.drops.items()}
        yield Anchor(slot.visit, unit.anchors[k], unit.needs, drops, slot.left == 0)


def _pick(
    pool: list[_Open], rng: random.Random | None, exhausted: bool, served: dict[int, int], batch: int
) -> int:
    """The open visit the next anchor comes from.

    Uniform among the visits that have not served the current batch (all of them once each has), so a batch holds
    as many distinct episodes as the pool has visits, up to its size. Once no episode waits outside the pool, the
    pass's tail is drained evenly: each batch takes from the visits with the most anchors left, a visit giving a
    second anchor to a batch only when it could not finish in the batches left otherwise, so the last batches of
    a pass still mix instead of leaving the longest visits alone at the end.
    """
    if rng is None:
        return 0
    if not exhausted:
        free = [i for i, o in enumerate(pool) if o.visit.vid not in served] or list(range(len(pool)))
        return free[rng.randrange(len(free))]
    batches_left = max(1, -(-sum(o.left for o in pool) // max(1, batch)))
    priority = [o.left - served.get(o.visit.vid, 0) * batches_left for o in pool]
    best = max(priority)
    top = [i for i, p in enumerate(priority) if p == best]
    return top[rng.randrange(len(top))]
