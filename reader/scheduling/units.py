"""Pure planning of an episode's decode units: which anchors are served together and which frames they need.

A unit is a set of anchors served one after another (other episodes' anchors interleave between them) whose
frames are decoded once, when the first of them is needed, and dropped after their last use. The cost model
picks the unit shape from the windows and the keyframe (GOP) structure, so that every needed frame is decoded
about once while each open unit holds few decoded frames (which is what lets many episodes be open at once):

- ``gop`` (no windows, samples show the anchor only): a unit is a run of whole GOPs, at most ``RUN_FRAMES``
  anchors and at most half its share of the frame budget (``unit_bytes``), decoded in one call when its
  first anchor is served (:func:`decoded_whole`). With AV1 GOP 2 that is 4 GOPs (8 frames) per open episode
  at 240x320 x 3 cameras and 2 GOPs at 480x640 x 3: fewer decode calls, each of which seeks and flushes the
  decoder.
- ``classes`` (every camera delta a multiple of a stride ``s``, GOPs of a constant length ``g`` dividing
  ``s``): anchors ``a`` with ``a mod s`` in one keyframe-aligned group of ``g`` residues need only frames of
  those residues (plus clamped edge frames), each a whole GOP: a unit costs ``g/s`` of the episode's frames,
  served in ascending (or descending) order so only the frames inside the window span are alive.
- ``residues`` (the same windows, when a ``classes`` unit's frames would not let the mixing target of units
  fit the frame budget, see :func:`choose_shape`; GOPs of 2 only): one residue per unit, so half the frames
  are alive; a frame that is not its GOP's keyframe then costs the keyframe's decode too (1.5 decodes per
  frame).
- ``residues`` also serves windows over long GOPs (more than ``RUN_FRAMES`` frames between keyframes): one
  residue per unit, served in ascending order while the decoder steps forward (:func:`streamed`), so a unit
  holds its window's positions only and decodes the episode once.
- ``sequential`` (anything else: contiguous windows): one unit of all anchors in ascending order, frames
  dropped behind the window.

A frame of a long GOP is *streamed*: decoded alone when first asked for, by a decoder that steps forward from
where it stopped (frames nobody takes are decoded and dropped, never kept for their GOP), and alive from its
own first use. A frame of a short GOP is decoded with its GOP's needed frames and alive from their first use.
Units holding streamed frames are served in ascending order only.

Frames are episode frame indices; ``gop_starts`` are the episode frames at which decoding can start (keyframes,
possibly negative for lead-in frames before the episode's first frame), sorted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from lerobot_wds.reader.decoding.gops import (
    RUN_FRAMES,
    decoded_whole,
    gop_of,
    long_gops,
    regular_gop,
    streamed,
)
from lerobot_wds.reader.scheduling.windows import clamp_window

Shape = Literal["gop", "classes", "residues", "sequential"]


@dataclass(frozen=True)
class Unit:
    """Anchors served in this order and, per camera, the frames they need and which anchor uses each last."""

    anchors: tuple[int, ...]
    drops: Mapping[str, tuple[tuple[int, ...], ...]]  # camera -> per anchor: frames to drop after it
    needs: Mapping[str, tuple[int, ...]]  # camera -> every frame the unit's anchors show, sorted
    peak_frames: Mapping[str, int]  # camera -> decoded frames alive at most while serving the unit


def stride(deltas: Mapping[str, Sequence[int]]) -> int:
    """The largest stride every camera delta is a multiple of (0 when all deltas are 0)."""
    return math.gcd(*(abs(d) for ds in deltas.values() for d in ds))


def choose_shape(
    deltas: Mapping[str, Sequence[int]],
    gops: Mapping[str, Sequence[int]],
    length: int,
    frame_bytes: Mapping[str, int] | None = None,
    unit_bytes: int | None = None,
) -> Shape:
    """The cost model: the unit shape that decodes each needed frame once with the fewest frames alive.

    ``classes`` needs every camera to have the same regular GOP length and keyframe phase. When a ``classes``
    unit would hold more than ``unit_bytes`` of frames (``frame_bytes``: one decoded frame per camera; its
    window positions times the GOP length alive per camera), ``residues`` halves that at extra decodes; only
    with GOPs of 2 (lerobot's AV1 default), where it costs 1.5 decodes per frame (longer GOPs cost more).
    """
    s = stride(deltas)
    if s == 0:
        return "gop"
    if any(long_gops(starts, length) for starts in gops.values()):
        return "residues" if s > 1 else "sequential"
    gop_lengths = {cam: regular_gop(starts, length) for cam, starts in gops.items()}
    shapes = {(g, gops[cam][0] % (g or 1)) for cam, g in gop_lengths.items()}
    if len(shapes) == 1:
        g, _ = shapes.pop()
        if g is not None and s > g and s % g == 0:
            if g == 2 and frame_bytes is not None and unit_bytes is not None:
                alive = sum(g * len(set(ds)) * frame_bytes[cam] for cam, ds in deltas.items())
                if alive > unit_bytes:
                    return "residues"
            return "classes"
    return "sequential"


def anchor_groups(
    shape: Shape, length: int, deltas: Mapping[str, Sequence[int]], gop_starts: Sequence[int], run: int = 1
) -> list[list[int]]:
    """Partitions the anchors ``0..length-1`` into units (ascending inside each); a ``gop`` unit joins whole
    consecutive GOPs while it holds at most ``run`` anchors."""
    if shape == "gop":
        groups: dict[int, list[int]] = {}
        for a in range(length):
            groups.setdefault(gop_of(a, gop_starts), []).append(a)
        merged: list[list[int]] = []
        for one in groups.values():
            if merged and len(merged[-1]) + len(one) <= run:
                merged[-1].extend(one)
            else:
                merged.append(one)
        return merged
    if shape == "sequential":
        return [list(range(length))]
    if shape == "residues":  # ``run`` consecutive residues per unit (1 unless a long GOP's unit has room)
        groups = {}
        for a in range(length):
            groups.setdefault(a % stride(deltas) // max(1, run), []).append(a)
        return [groups[k] for k in sorted(groups)]
    s, g = stride(deltas), regular_gop(gop_starts, length)
    assert g is not None  # choose_shape checked it
    phase = gop_starts[0] % g
    groups = {}
    for a in range(length):
        groups.setdefault(((a - phase) % s) // g, []).append(a)
    return [groups[k] for k in sorted(groups)]


def make_unit(
    anchors: Sequence[int], length: int, deltas: Mapping[str, Sequence[int]], gops: Mapping[str, Sequence[int]]
) -> Unit:
    """Computes each frame's last use and the unit's peak of alive frames for ``anchors`` in that order.

    A frame is alive from the moment any needed frame of its GOP is first needed (the GOP is decoded then)
    until its own last use.
    """
    drops: dict[str, tuple[tuple[int, ...], ...]] = {}
    peak: dict[str, int] = {}
    for cam, ds in deltas.items():
        gop_starts = gops[cam]
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        gop_first: dict[int, int] = {}
        for i, a in enumerate(anchors):
            for f in clamp_window(a, length, ds):
                first.setdefault(f, i)
                last[f] = i
                gop_first.setdefault(gop_of(f, gop_starts), i)
        per_anchor: list[list[int]] = [[] for _ in anchors]
        alive = [0] * (len(anchors) + 1)
        for f, i in last.items():
            per_anchor[i].append(f)
            alive[first[f] if streamed(f, gop_starts, length) else gop_first[gop_of(f, gop_starts)]] += 1
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
    if shape == "residues":
        # a unit over long GOPs decodes the episode once by stepping forward: serve as many residues together as
        # its share of the budget holds (fewer passes over the episode); over GOPs of 2, one residue per unit
        run = 1
        if long and frame_bytes is not None and unit_bytes is not None:
            window = sum((len(set(deltas[c])) + 2) * frame_bytes[c] for c in deltas)
            run = max(1, min(stride(deltas), unit_bytes // max(1, window)))
    groups = anchor_groups(shape, length, deltas, starts[next(iter(deltas))], run)
    if anchors is not None:
        lo, hi = anchors
        groups = [kept for g in groups if (kept := [a for a in g if lo <= a < hi])]
    if long:
        descending = None  # a streamed frame is decoded by stepping forward: serve every unit in frame order
    if shape == "gop" and all(len(g) <= RUN_FRAMES for g in groups):
        # each anchor shows only itself and every run is decoded whole: the general case, fast
        return shape, [
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
    return shape, units


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
