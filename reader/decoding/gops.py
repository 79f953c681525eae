"""GOP geometry of an episode's camera: which GOP holds a frame, how long GOPs are, and how a frame is decoded.

``gop_starts`` are the episode frames at which decoding can start (keyframes, possibly negative for lead-in
frames before the episode's first frame), sorted. The frame pool (:mod:`frames`) decodes by these rules and the
scheduler's unit planner (:mod:`lerobot_wds.reader.scheduling.units`) plans its peaks by the same ones.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

RUN_FRAMES = 8  # the longest run of a camera's frames a unit decodes in one call (see decoded_whole)


def decoded_whole(needs: Sequence[int]) -> bool:
    """Whether a unit needing ``needs`` (sorted) of a camera decodes them all in one call at its first use: one
    contiguous run of at most ``RUN_FRAMES`` frames (the decoder, :mod:`frames`, and the plan's peaks agree)."""
    return 0 < len(needs) <= RUN_FRAMES and needs[-1] - needs[0] + 1 == len(needs)


def gop_index(frame: int, gop_starts: Sequence[int]) -> int:
    """Returns the index in ``gop_starts`` of the GOP holding ``frame`` (the last keyframe at or before it)."""
    return max(0, bisect.bisect_right(gop_starts, frame) - 1)


def gop_of(frame: int, gop_starts: Sequence[int]) -> int:
    """Returns the start of the GOP holding ``frame``."""
    return gop_starts[gop_index(frame, gop_starts)]


def gop_span(frame: int, gop_starts: Sequence[int], length: int) -> tuple[int, int]:
    """Returns the episode frames ``[lo, hi)`` of the GOP holding ``frame``, clipped to the episode."""
    i = gop_index(frame, gop_starts)
    hi = gop_starts[i + 1] if i + 1 < len(gop_starts) else length
    return max(0, gop_starts[i]), min(length, hi)


def streamed(frame: int, gop_starts: Sequence[int], length: int) -> bool:
    """Whether ``frame`` is decoded alone by stepping the decoder forward (its GOP spans more than
    ``RUN_FRAMES`` frames of the episode) rather than with its GOP's other needed frames (the pool, :mod:`frames`,
    and the plan's peaks agree on this rule)."""
    lo, hi = gop_span(frame, gop_starts, length)
    return hi - lo > RUN_FRAMES


def long_gops(gop_starts: Sequence[int], length: int) -> bool:
    """Whether any GOP of the episode spans more than ``RUN_FRAMES`` of its frames."""
    inside = [max(0, k) for k in gop_starts if k < length] or [0]
    bounds = [*inside, length]
    return any(b - a > RUN_FRAMES for a, b in zip(bounds, bounds[1:], strict=False))


def regular_gop(gop_starts: Sequence[int], length: int) -> int | None:
    """Returns the GOP length if every GOP inside ``[0, length)`` has the same length, else None."""
    inside = [k for k in gop_starts if k < length]
    gaps = {b - a for a, b in zip(inside, inside[1:], strict=False)}
    if len(inside) < 2 or len(gaps) != 1:
        return None
    return gaps.pop()
