"""Cutting one episode of one camera out of a long source MP4 into a self-contained mini-MP4.

Samples are selected by the container's own presentation timestamps (``from_timestamp`` in LeRobot's
metadata is duration arithmetic, so it is matched with a tolerance of a fraction of a frame), the cut
starts on the keyframe at or before the episode's first frame in decode order, and the copied bytes are
wrapped by :func:`write_mp4` without re-encoding. Frames the decoder needs but the episode does not
own are counted as ``lead_in`` (presented before the episode) and ``trail`` (after it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lerobot_wds.convert.errors import Mp4Error
from lerobot_wds.convert.mp4.boxes import ReadFn
from lerobot_wds.convert.mp4.index import TrackIndex
from lerobot_wds.convert.mp4.write import SampleTable, write_mp4

# Matching window around an expected frame time, as a fraction of the frame period.
TOLERANCE_FRAMES = 0.5
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
# Merge byte ranges closer than this into one read (fewer round trips on remote sources).
COALESCE_GAP = 64 * 1024


@dataclass(frozen=True)
class Clip:
    """A self-contained mini-MP4 cut from a source track, and how its frames map onto the cut's timeline.

    ``frames`` samples in presentation order: ``lead_in`` before the first wanted frame, ``trail`` after the
    last; the first wanted frame is presented at ``pts_offset_s`` seconds of the clip.
    """

    data: bytes
    codec: str
    width: int
    height: int
    frames: int
    lead_in: int
    trail: int
    pts_offset_s: float


@dataclass(frozen=True)
class SampleRange:
    """Which source samples (decode order, ``start:stop``) a clip copies and how they present."""

    start: int
    stop: int
    lead_in: int
    trail: int
    first_frame_pts: int


def plan_cut(
    index: TrackIndex, *, from_timestamp: float, to_timestamp: float, fps: float, expected_frames: int, where: str
) -> SampleRange:
    """Chooses the decode-order sample range of an episode (pure; no I/O).

    Raises:
        Mp4Error: the frames presented in [from_timestamp, to_timestamp) are not ``expected_frames`` evenly
            spaced frames, or no keyframe precedes the episode's first frame.
    """
    order, sorted_pts = index.pts_order
    tol = TOLERANCE_FRAMES * index.timescale / fps
    lo = from_timestamp * index.timescale - tol
    hi = to_timestamp * index.timescale - tol
    # the samples presented in [lo, hi), by binary search over the file's presentation order
    members = np.sort(order[_first_at_least(sorted_pts, lo) : _first_at_least(sorted_pts, hi)])
    if members.size != expected_frames:
        raise Mp4Error(
            f"{where}: expected {expected_frames} frames presented in "
            f"[{from_timestamp:.6f}, {to_timestamp:.6f}) s, "
            f"found {members.size} in the container's timestamps"
        )
    if members.size == 0:
        raise Mp4Error(f"{where}: episode has no frames")
    ordered = np.sort(_pts(index, members))
    expected = ordered[0] + np.arange(members.size) * (index.timescale / fps)
    worst = float(np.abs(ordered - expected).max())
    if worst > tol:
        raise Mp4Error(
            f"{where}: frames are not spaced 1/{fps} s apart (off by {worst / index.timescale:.6f} s); "
            "variable frame rate sources are not supported"
        )
    first, last = int(members.min()), int(members.max())
    keys = index.keyframe_samples[: np.searchsorted(index.keyframe_samples, first, "right")]
    if keys.size == 0:
        raise Mp4Error(f"{where}: no keyframe at or before the episode's first frame (sample {first})")
    k = keys.size - 1
    # Open-GOP codecs present leading pictures before their keyframe and predict them from the previous
    # GOP: if an episode frame presents before the chosen keyframe, start one keyframe earlier.
    while k > 0 and _pts(index, keys[k]) > ordered[0]:
        k -= 1
    if _pts(index, keys[k]) > ordered[0]:
        raise Mp4Error(f"{where}: the episode's first frame presents before every keyframe that precedes it")
    start, stop = int(keys[k]), last + 1
    window = _pts(index, slice(start, stop))
    return SampleRange(
        start=start,
        stop=stop,
        lead_in=int(np.count_nonzero(window < ordered[0])),
        trail=int(np.count_nonzero(window > ordered[-1])),
        first_frame_pts=int(ordered[0]),
    )


def _first_at_least(sorted_pts: np.ndarray, bound: float) -> int:
    """The position of the first integer pts ``>= bound`` (searched with an integer key: a float key would
    make numpy convert the whole array first)."""
    key = min(max(math.ceil(bound), _INT64_MIN), _INT64_MAX)
    return int(np.searchsorted(sorted_pts, np.int64(key), "left"))


def _pts(index: TrackIndex, at: Any) -> Any:
    """Presentation times of the samples ``at`` (an index, index array or slice), as :meth:`TrackIndex.pts`."""
    return index.dts[at] + index.cts[at] - index.edit_shift


def read_samples(index: TrackIndex, read: ReadFn, start: int, stop: int, *, where: str) -> bytes:
    """Reads samples ``start:stop`` (decode order) and returns their bytes concatenated in that order."""
    offsets, sizes = index.offsets[start:stop], index.sizes[start:stop]
    out = bytearray()
    i = 0
    while i < offsets.size:
        # grow a run of samples laid out in increasing file order with small gaps: one read for all
        j = i + 1
        while j < offsets.size and 0 <= offsets[j] - (offsets[j - 1] + sizes[j - 1]) <= COALESCE_GAP:
            j += 1
        base = int(offsets[i])
        length = int(offsets[j - 1] + sizes[j - 1]) - base
        blob = read(base, length)
        if len(blob) != length:
            raise Mp4Error(f"{where}: short read at offset {base}: got {len(blob)} of {length} bytes")
        for k in range(i, j):
            rel = int(offsets[k]) - base
            out += blob[rel : rel + int(sizes[k])]
        i = j
    return bytes(out)


def cut_episode(
    index: TrackIndex,
    read: ReadFn,
    *,
    from_timestamp: float,
    to_timestamp: float,
    fps: float,
    expected_frames: int,
    where: str,
) -> Clip:
    """Cuts the frames presented in ``[from_timestamp, to_timestamp)`` into a faststart mini-MP4.

    Raises:
        Mp4Error: naming ``where`` when the frames are not ``expected_frames`` evenly spaced frames, no keyframe
            precedes the first one, or a read comes back short.
    """
    rng = plan_cut(
        index,
        from_timestamp=from_timestamp,
        to_timestamp=to_timestamp,
        fps=fps,
        expected_frames=expected_frames,
        where=where,
    )
    s = slice(rng.start, rng.stop)
    table = SampleTable(
        stsd=index.stsd,
        timescale=index.timescale,
        width=index.width,
        height=index.height,
        durations=index.durations[s],
        cts=index.cts[s],
        keyframes=index.keyframes[s],
        sizes=index.sizes[s],
    )
    data = write_mp4(table, read_samples(index, read, rng.start, rng.stop, where=where), where=where)
    # Presentation times in the clip start at its earliest composition time (the edit list's shift).
    comp = (index.dts[s] - index.dts[rng.start]) + index.cts[s]
    first_pts_in_clip = rng.first_frame_pts - (int(index.dts[rng.start]) - index.edit_shift) - int(comp.min())
    return Clip(
        data=data,
        codec=index.codec,
        width=index.width,
        height=index.height,
        frames=rng.stop - rng.start,
        lead_in=rng.lead_in,
        trail=rng.trail,
        pts_offset_s=first_pts_in_clip / index.timescale,
    )
