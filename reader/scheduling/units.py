"""Pure planning of an episode's decode units: which anchors are served together and which frames they need.

A unit is a set of anchors served one after another (other episodes' anchors interleave between them) whose
frames are decoded once, when the first of them is needed, and dropped after their last use. The cost model
(:mod:`shapes`) picks the unit shape, so that every needed frame is decoded about once while each open unit holds
few decoded frames (which is what lets many episodes be open at once).

A frame of a long GOP is *streamed*: a decoder steps forward from where it stopped to the frame asked for,
keeping the frames its unit needs on the way (frames nobody takes are decoded and dropped, never kept for their
GOP), so a unit is one pass over its episode and a streamed frame is alive from the moment the pass reaches it.
A frame of a short GOP is decoded with its GOP's needed frames and alive from their first use. Units holding
streamed frames are served in ascending order only.

Frames are episode frame indices; ``gop_starts`` are the episode frames at which decoding can start (keyframes,
possibly negative for lead-in frames before the episode's first frame), sorted.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from lerobot_wds.reader.decoding.gops import (
    RUN_FRAMES,
    decoded_whole,
    gop_of,
    long_gops,
    streamed,
)
from lerobot_wds.reader.scheduling.shapes import Shape, anchor_groups, choose_shape, stride
from lerobot_wds.reader.scheduling.windows import clamp_window


@dataclass(frozen=True)
class Unit:
    """Anchors served in this order and, per camera, the frames they need and which anchor uses each last."""

    anchors: tuple[int, ...]
    drops: Mapping[str, tuple[tuple[int, ...], ...]]  # camera -> per anchor: frames to drop after it
    needs: Mapping[str, tuple[int, ...]]  # camera -> every frame the unit's anchors show, sorted
    peak_frames: Mapping[str, int]  # camera -> decoded frames alive at most while serving the unit


def make_unit(
    anchors: Sequence[int], length: int, deltas: Mapping[str, Sequence[int]], gops: Mapping[str, Sequence[int]]
) -> Unit:
    """Computes each frame's last use and the unit's peak of alive frames for ``anchors`` in that order.

    A frame of a short GOP is alive from the moment any needed frame of its GOP is first needed (the GOP is
    decoded then) until its own last use; a streamed frame from the moment the decoder's pass reaches it (the
    furthest frame asked for so far), until its own last use.
    """
    drops: dict[str, tuple[tuple[int, ...], ...]] = {}
    peak: dict[str, int] = {}
    for cam, ds in deltas.items():
        gop_starts = gops[cam]
        last: dict[int, int] = {}
        gop_first: dict[int, int] = {}
        reach: list[int] = []  # per anchor: the furthest frame asked for up to it (non-decreasing)
        for i, a in enumerate(anchors):
            window = clamp_window(a, length, ds)
            for f in window:
                last[f] = i
                gop_first.setdefault(gop_of(f, gop_starts), i)
            reach.append(max(reach[-1] if reach else -1, *window))
        per_anchor: list[list[int]] = [[] for _ in anchors]
        alive = [0] * (len(anchors) + 1)
        for f, i in last.items():
            per_anchor[i].append(f)
            on = (
                bisect.bisect_left(reach, f)
                if streamed(f, gop_starts, length)
                else gop_first[gop_of(f, gop_starts)]
            )
            alive[on] += 1
            alive[i + 1] -= 1
        drops[cam] = tuple(tuple(sorted(fs)) for fs in per_anchor)
        running = peak[cam] = 0
        for step in alive:
            running += step
            peak[cam] = max(peak[cam], running)
    needs = {cam: tuple(sorted({f for fs in per_cam for f in fs})) for cam, per_cam in drops.items()}
    return Unit(tuple(anchors), drops, needs, peak)


def plan_units(
    length: int,
    deltas: Mapping[str, Sequence[int]],
    gops: Mapping[str, Sequence[int]],
    descending: Sequence[bool] | None = None,
    shape: Shape | None = None,
    anchors: tuple[int, int] | None = None,
    frame_bytes: Mapping[str, int] | None = None,
    unit_bytes: int | None = None,
) -> tuple[Shape, list[Unit]]:
    """Plans every unit of an episode; ``descending[i]`` serves unit ``i`` from its last anchor (optional).

    ``shape`` overrides the cost model (``"sequential"`` serves the anchors in frame order); ``anchors``
    restricts the units to anchors ``[lo, hi)`` (windows still reach the whole episode); ``frame_bytes`` and
    ``unit_bytes`` let the cost model trade decodes for memory (see :func:`choose_shape`).

    ``deltas`` maps each camera to its frame offsets (``(0,)`` for a camera without a window); ``gops`` maps
    each camera to its GOP starts (episode frames). Units are grouped by the first camera's GOPs.
    """
    if length < 1:
        return "gop", []
    starts = {cam: sorted(gops.get(cam) or [0]) for cam in deltas}
    shape = shape or choose_shape(deltas, starts, length, frame_bytes, unit_bytes)
    run = RUN_FRAMES
    if frame_bytes is not None and unit_bytes is not None:  # half its share: the target stays well in budget
        run = max(1, min(RUN_FRAMES, unit_bytes // max(1, 2 * sum(frame_bytes[c] for c in deltas))))
    long = any(long_gops(s, length) for s in starts.values())
    if long:
        descending = None  # a streamed frame is decoded by stepping forward: serve every unit in frame order
    if shape != "residues":
        return shape, _plan(shape, length, deltas, starts, run, anchors, descending)
    if not long or frame_bytes is None or unit_bytes is None:
        return shape, _plan(shape, length, deltas, starts, 1, anchors, descending)  # GOPs of 2: one residue
    # a unit over long GOPs is one pass over its episode (the decoder steps forward and keeps what the unit
    # needs): serve as many residues together as its share of the budget holds, for fewer passes. A residue's
    # frames in a window: its positions inside the episode, each camera's clamped edges beside them
    s = stride(deltas)
    per = sum((min(len(set(deltas[c])), -(-length // s)) * frame_bytes[c]) for c in deltas)
    edges = sum(2 * frame_bytes[c] for c in deltas)
    run = max(1, min(s, (unit_bytes - edges) // max(1, per)))
    while True:
        units = _plan(shape, length, deltas, starts, run, anchors, descending)
        if run == 1 or max(unit_nbytes(u, frame_bytes) for u in units) <= unit_bytes:
            return shape, units
        run -= 1


def unit_nbytes(unit: Unit, frame_bytes: Mapping[str, int]) -> int:
    """A unit's planned peak of decoded frames in bytes (``frame_bytes``: one decoded frame per camera)."""
    return sum(n * frame_bytes[c] for c, n in unit.peak_frames.items())


def _plan(
    shape: Shape,
    length: int,
    deltas: Mapping[str, Sequence[int]],
    starts: Mapping[str, Sequence[int]],
    run: int,
    anchors: tuple[int, int] | None,
    descending: Sequence[bool] | None,
) -> list[Unit]:
    groups = anchor_groups(shape, length, deltas, starts[next(iter(deltas))], run)
    if anchors is not None:
        lo, hi = anchors
        groups = [kept for g in groups if (kept := [a for a in g if lo <= a < hi])]
    if shape == "gop" and all(len(g) <= RUN_FRAMES for g in groups):
        # each anchor shows only itself and every run is decoded whole: the general case, fast
        return [
            Unit(
                tuple(g),
                {c: tuple((a,) for a in g) for c in deltas},
                {c: tuple(g) for c in deltas},
                {c: len(g) for c in deltas},
            )
            for g in groups
        ]
    units = []
    for i, group in enumerate(groups):
        order = group[::-1] if descending is not None and descending[i % len(descending)] else group
        units.append(_unit(order, length, deltas, starts))
    return units


def _unit(
    anchors: Sequence[int], length: int, deltas: Mapping[str, Sequence[int]], starts: Mapping[str, Sequence[int]]
) -> Unit:
    unit = make_unit(anchors, length, deltas, starts)
    # a short contiguous run is decoded at once (decoded_whole): all of it is alive from the first use
    whole = {c: len(n) for c, n in unit.needs.items() if decoded_whole(n) and len(n) > unit.peak_frames[c]}
    return replace(unit, peak_frames={**unit.peak_frames, **whole}) if whole else unit


def cut_units(
    units: Sequence[Unit],
    first: int,
    last: int,
    length: int,
    deltas: Mapping[str, Sequence[int]],
    gops: Mapping[str, Sequence[int]],
) -> list[Unit]:
    """Keeps the anchors at positions ``[first, last)`` of the order ``units`` serve them in (units in order,
    anchors in order inside each); a unit cut in two is re-planned for the anchors it keeps."""
    starts = {cam: sorted(gops.get(cam) or [0]) for cam in deltas}
    kept: list[Unit] = []
    at = 0
    for unit in units:
        n = len(unit.anchors)
        lo, hi = max(first, at) - at, min(last, at + n) - at
        at += n
        if lo >= hi:
            continue
        kept.append(unit if (lo, hi) == (0, n) else _unit(unit.anchors[lo:hi], length, deltas, starts))
    return kept
