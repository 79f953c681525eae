"""The cost model of decode units: which shape an episode's units take, and which anchors each unit serves.

The shape is chosen from the windows and the keyframe (GOP) structure, so that every needed frame is decoded
about once while each open unit holds few decoded frames (:mod:`units` plans the units themselves):

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
- ``residues`` also serves windows over long GOPs (more than ``RUN_FRAMES`` frames between keyframes): as many
  consecutive residues per unit as its share of the memory holds, served in ascending order while the decoder
  steps forward (:func:`streamed`), so a unit holds its residues' window positions only and is one pass over
  the episode: the more residues a unit serves, the fewer passes.
- ``sequential`` (anything else: contiguous windows): one unit of all anchors in ascending order, frames
  dropped behind the window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from lerobot_wds.reader.decoding.gops import gop_of, long_gops, regular_gop

Shape = Literal["gop", "classes", "residues", "sequential"]


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
