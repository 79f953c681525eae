"""The anchor scheduler: a large pool of open episodes, each serving one decode unit at a time.

Episodes arrive compressed (a few MB each) and are opened into the pool while its bounds allow: at most
``active`` visits, their mini-MP4s within ``open_bytes``, and the planned peak of decoded frames of their
units (see :mod:`units`) within the frame budget. The default budget is sized from what the scheduler sees:
it always admits the :mod:`mixing` target of open visits, whatever the frame size and window, and reserves
their planned frames in :class:`frames.FramePool` (which enforces the budget; planning within it means it
never has to evict). A budget the user set is obeyed, and said out loud when it holds fewer visits than the
target. Each anchor comes from an open visit chosen uniformly (by anchors left once no episode waits
outside the pool), so a batch mixes about as many episodes as i.i.d. draws over the open visits would.
Inside a visit, anchors come unit by unit (units in random order), so each GOP a unit needs is decoded once
and its frames are freed after their last use.

Without an rng (``shuffle=False``) every episode is served in order, frames in order.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from lerobot_wds.core.errors import FormatError
from lerobot_wds.reader.decoding.decode import DEFAULT_FRAME_BYTES, DEFAULT_OPEN_BYTES
from lerobot_wds.reader.decoding.frames import FramePool, Visit
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.reader.parsing.episode import Episode
from lerobot_wds.reader.scheduling.mixing import warn_budget_bounds_mix, warn_open_bytes_bound_mix
from lerobot_wds.reader.scheduling.units import Shape, Unit, plan_units


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
    frame_bytes: int  # planned peak decoded bytes of its largest unit
    open_bytes: int


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
    the frame memory a unit should stay within so the mixing target fits (see :func:`units.choose_shape`)."""
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
    peak = max((sum(u.peak_frames[c] * frame_nbytes(episode, c) for c in deltas) for u in units), default=0)
    compressed = sum(len(v) for v in episode.videos.values())
    lo, hi = episode.anchor_range
    return _Open(visit, units, 0, hi - lo, peak, compressed)


def schedule(
    eps: Iterable[Episode],
    *,
    frames: FramePool,
    deltas: Mapping[str, Sequence[int]],
    rng: random.Random | None,
    active: int,
    open_bytes: int | None,
    frame_budget: int | None,
    target: int = 1,
    batch: int | None = None,
    ramp: int = 0,
    errors: ErrorCounter | None = None,
    lookahead: int = 1,
) -> Iterator[Anchor]:
    """Yields every anchor of every episode once (see the module docstring).

    ``deltas`` maps each camera to its frame offsets. With ``ramp`` > 0 the pool starts with one visit and may
    grow by one every ``ramp`` anchors, so the first batch waits for few episodes. An episode whose videos
    cannot be opened is handled by ``errors`` (raised, or skipped and counted).

    The pool keeps ``target`` visits open (see :mod:`mixing`) and more up to ``active`` while their planned
    frames fit ``frame_budget`` and their videos ``open_bytes``; with None (the defaults) the memory the
    target needs is reserved from the units' planned peaks and the videos' sizes whatever it is, while a
    user-set bound that holds fewer visits than the target is obeyed and said once (:mod:`mixing`).

    ``lookahead`` is how many yielded anchors may still wait to be built (a batch): a finished visit's frames
    stay reserved until that many further anchors were yielded, because they are decoded when its batch is
    built (each frame is dropped right after the sample that uses it last, see :mod:`assemble`).
    """
    it = iter(eps)
    pool: list[_Open] = []
    closing: deque[tuple[int, int]] = deque()  # (anchors yielded when a visit finished, its reserved bytes)
    pending: _Open | None = None
    exhausted = False
    used_frames = used_open = yielded = vid = held = 0
    limit = active if rng is not None else 1
    auto = frame_budget is None
    budget = DEFAULT_FRAME_BYTES if frame_budget is None else frame_budget
    open_auto = open_bytes is None
    open_cap = DEFAULT_OPEN_BYTES if open_bytes is None else open_bytes
    unit_bytes = budget // max(1, target)  # what a unit may hold for the target to fit the (default) budget
    while True:
        while closing and yielded - closing[0][0] >= lookahead:
            held -= closing.popleft()[1]
        allowed = min(limit, 1 + yielded // ramp) if ramp > 0 and rng is not None else limit
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
                    pending = open_visit(ep, vid, frames, deltas, rng, unit_bytes)
                except FormatError as e:
                    frames.release(Visit(ep, vid))
                    (errors or ErrorCounter()).handle(e, "episode", ep.index)
                    continue
            need = used_frames + held + pending.frame_bytes
            fits_frames = need <= budget or (auto and len(pool) < target)
            fits = used_open + pending.open_bytes <= open_cap or (open_auto and len(pool) < target)
            if pool and not (fits and fits_frames):
                if len(pool) < min(target, allowed):
                    if not fits:
                        warn_open_bytes_bound_mix(open_cap, len(pool), pending.open_bytes, batch)
                    elif not auto:
                        warn_budget_bounds_mix(budget, len(pool), pending.frame_bytes, batch)
                break  # opens once enough of the pool has finished
            pool.append(pending)
            used_frames += pending.frame_bytes
            used_open += pending.open_bytes
            frames.reserve(used_frames + held)
            pending = None
        if not pool:
            return
        i = _pick(pool, rng, exhausted)
        slot = pool[i]
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
            used_frames -= slot.frame_bytes
            used_open -= slot.open_bytes
            held += slot.frame_bytes
            closing.append((yielded, slot.frame_bytes))
        drops = {cam: per_anchor[k] for cam, per_anchor in unit.drops.items()}
        yield Anchor(slot.visit, unit.anchors[k], unit.needs, drops, last)


def _pick(pool: list[_Open], rng: random.Random | None, exhausted: bool) -> int:
    """The open visit the next anchor comes from: uniform while episodes wait outside the pool (every open
    visit equally likely, the mix :mod:`mixing` counts on); once none wait, weighted by anchors left, which
    spreads the last visits' anchors over the pass's tail instead of leaving the longest one alone at the end."""
    if rng is None:
        return 0
    if exhausted:
        return rng.choices(range(len(pool)), weights=[o.left for o in pool])[0]
    return rng.randrange(len(pool))
