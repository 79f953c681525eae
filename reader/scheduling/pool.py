"""The anchor scheduler: a large pool of open episodes, each serving one decode unit at a time.

Episodes arrive compressed (a few MB each) and are opened into the pool while three bounds allow: at most
``active`` visits, their mini-MP4s within ``open_bytes``, and the planned peak of decoded frames of their
units (see :mod:`units`) within ``frame_budget`` (the pool's owner, :class:`frames.FramePool`, enforces the
budget itself; planning within it means it never has to evict). Each anchor comes from a random open visit
weighted by the anchors it has left, which is sampling without replacement over the pool: with the pool
holding all of a reader's episodes, batches mix like i.i.d. sampling over them. Inside a visit, anchors
come unit by unit (units in random order), so each GOP a unit needs is decoded once and its frames are
freed after their last use.

Without an rng (``shuffle=False``) every episode is served in order, frames in order.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from lerobot_wds.core.errors import FormatError
from lerobot_wds.reader.decoding.frames import FramePool, Visit
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.reader.parsing.episode import Episode
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
    episode: Episode, vid: int, frames: FramePool, deltas: Mapping[str, Sequence[int]], rng: random.Random | None
) -> _Open:
    """Plans an episode's units (GOPs from its decoders) in the order they will be served."""
    visit = Visit(episode, vid)
    gops = {cam: frames.gops(visit, cam) for cam in deltas}
    flips = [rng.random() < 0.5 for _ in range(64)] if rng is not None else None
    shape: Shape | None = None if rng is not None else "sequential"
    _, units = plan_units(episode.length, deltas, gops, flips, shape=shape, anchors=episode.anchors)
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
    open_bytes: int,
    frame_budget: int,
    ramp: int = 0,
    errors: ErrorCounter | None = None,
    lookahead: int = 1,
) -> Iterator[Anchor]:
    """Yields every anchor of every episode once (see the module docstring).

    ``deltas`` maps each camera to its frame offsets. With ``ramp`` > 0 the pool starts with one visit and may
    grow by one every ``ramp`` anchors, so the first batch waits for few episodes. An episode whose videos
    cannot be opened is handled by ``errors`` (raised, or skipped and counted).

    ``lookahead`` is how many yielded anchors may still wait to be built (a batch): their frames outlive the
    unit or visit that planned them, so the budget keeps room for that many windows.
    """
    it = iter(eps)
    pool: list[_Open] = []
    pending: _Open | None = None
    exhausted = False
    used_frames = used_open = yielded = vid = 0
    limit = active if rng is not None else 1
    while True:
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
                    pending = open_visit(ep, vid, frames, deltas, rng)
                except FormatError as e:
                    frames.release(Visit(ep, vid))
                    (errors or ErrorCounter()).handle(e, "episode")
                    continue
            ep = pending.visit.episode
            margin = lookahead * sum(len(set(d)) * frame_nbytes(ep, c) for c, d in deltas.items())
            fits = used_frames + pending.frame_bytes + margin <= frame_budget
            fits = fits and used_open + pending.open_bytes <= open_bytes
            if pool and not fits:
                break  # opens once enough of the pool has finished
            pool.append(pending)
            used_frames += pending.frame_bytes
            used_open += pending.open_bytes
            pending = None
        if not pool:
            return
        i = rng.choices(range(len(pool)), weights=[o.left for o in pool])[0] if rng is not None else 0
        slot = pool[i]
        unit = slot.units[0]
        k = slot.at
        slot.at += 1
        slot.left -= 1
        if slot.at == len(unit.anchors):
            slot.units.pop(0)
            slot.at = 0
        last = slot.left == 0
        if last:
            pool.pop(i)
            used_frames -= slot.frame_bytes
            used_open -= slot.open_bytes
        yielded += 1
        drops = {cam: per_anchor[k] for cam, per_anchor in unit.drops.items()}
        yield Anchor(slot.visit, unit.anchors[k], unit.needs, drops, last)
