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
from lerobot_wds.reader.scheduling.admission import Admission, Cost, PoolBounds, decoder_nbytes
from lerobot_wds.reader.scheduling.mixing import warn_pool_bound
from lerobot_wds.reader.scheduling.units import Shape, Unit, cut_units, plan_units

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
) -> _Open:
    """Plans an episode's units (GOPs from its decoders) in the order they will be served; ``unit_bytes`` is
    the frame memory a unit should stay within so the mixing target fits (see :func:`units.choose_shape`).

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
    peak = max((sum(u.peak_frames[c] * frame_nbytes(episode, c) for c in deltas) for u in units), default=0)
    compressed = sum(len(v) for v in episode.videos.values())
    cams = episode.meta.cameras
    decoders = sum(
        decoder_nbytes(cams[c].width, cams[c].height, long_gops(gops[c], episode.length)) for c in deltas
    )
    return _Open(visit, units, 0, sum(len(u.anchors) for u in units), Cost(peak, compressed, decoders))


def schedule(
    eps: Iterable[Episode],
    *,
    frames: FramePool,
    deltas: Mapping[str, Sequence[int]],
    rng: random.Random | None,
    bounds: PoolBounds,
    batch: int = 1,
    errors: ErrorCounter | None = None,
    lookahead: int = 1,
    visit_rng: Callable[[Episode], random.Random] | None = None,
) -> Iterator[Anchor]:
    """Yields every anchor of every episode once (see the module docstring).

    ``deltas`` maps each camera to its frame offsets; ``bounds`` bound the pool (:mod:`admission`); ``batch``
    anchors in a row form one batch, whose anchors come from distinct visits while the pool has enough. An
    episode whose videos cannot be opened is handled by ``errors`` (raised, or skipped and counted).

    ``lookahead`` is how many yielded anchors may still wait to be built (a batch): a finished visit's frames
    stay reserved until that many further anchors were yielded, because they are decoded when its batch is
    built (each frame is dropped right after the sample that uses it last, see :mod:`assemble`).

    ``visit_rng(episode)`` gives each visit its own generator for the order of its units (with ``rng``; without
    it they come from ``rng``).
    """
    it = iter(eps)
    pool: list[_Open] = []
    pending: _Open | None = None
    exhausted = False
    yielded = vid = 0
    served: dict[int, int] = {}  # anchors each visit gave the current batch
    memory = Admission(bounds)
    frames.plan_peak = 0
    limit = bounds.active if rng is not None else 1
    first = min(limit, bounds.target)  # open before the first anchor: a full first batch
    # a unit's share of the frame budget (or of half the memory ceiling, when smaller): the target must fit it
    unit_bytes = min(bounds.frame_bytes, bounds.memory // 2) // max(1, bounds.target)
    while True:
        memory.settle(yielded, lookahead)
        # beyond the target the pool grows by one visit every RAMP_ANCHORS anchors (their decoders and first
        # frames then spread over the first batches instead of delaying the first)
        allowed = min(limit, first + yielded // RAMP_ANCHORS)
        while not exhausted and len(pool) < allowed:
            if pending is None:
                ep = next(it, None)
                if ep is None:
                    exhausted = True
                    break
                if ep.anchor_range[1] <= ep.anchor_range[0]:
                    continue
                vid += 1
                try:
                    own = visit_rng(ep) if rng is not None and visit_rng is not None else rng
                    pending = open_visit(ep, vid, frames, deltas, own, unit_bytes)
                except FormatError as e:
                    frames.release(Visit(ep, vid))
                    (errors or ErrorCounter()).handle(e, "episode", ep.index)
                    continue
            bound = memory.blocked_by(pending.cost, len(pool))
            if bound is not None:
                if bound != "active" and len(pool) < bounds.target:
                    warn_pool_bound(bound, bounds, len(pool), pending.cost, memory, batch)
                break  # opens once enough of the pool has finished
            pool.append(pending)
            memory.add(pending.cost)
            frames.reserve(memory.frame_reservation)
            frames.plan_peak = max(frames.plan_peak, memory.total)
            pending = None
        if not pool:
            return
        if yielded % max(1, batch) == 0:
            served.clear()
        i = _pick(pool, rng, exhausted, served, batch)
        slot = pool[i]
        served[slot.visit.vid] = served.get(slot.visit.vid, 0) + 1
        unit = slot.units[0]
        k = slot.at
        slot.at += 1
        slot.left -= 1
        if slot.at == len(unit.anchors):
            slot.units.pop(0)
            slot.at = 0
        last = slot.left == 0
        yielded += 1
        if last:
            pool.pop(i)
            memory.finish(slot.cost, yielded)
        drops = {cam: per_anchor[k] for cam, per_anchor in unit.drops.items()}
        yield Anchor(slot.visit, unit.anchors[k], unit.needs, drops, last)


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
