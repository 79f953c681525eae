"""The one owner of a worker's decoded memory: decoded frames and open decoders, budgets, eviction, counters.

Frames live in an :class:`LruCache` bounded by the pool's :class:`~lerobot_wds.reader.decoding.budget.FrameBudget`
(``DecodeConfig.frame_cache_bytes``, by default grown to what admission reserves for the open visits,
:meth:`FramePool.reserve`) and keyed by
``(visit, (camera, frame))``. A missing frame is decoded GOP-aware: the decoder seeks to the keyframe of its
GOP and decodes forward to the last frame of that GOP the asking unit needs, and every needed frame
of that run is kept (a GOP is decoded once however many of its frames the unit uses). The scheduler
(:mod:`pool`) drops frames after their last use and plans so the budget is never reached; if it is, the
least recently used frames are evicted, counted, and decoded again when asked for (a miss): the budget holds
whatever the plan said. Decoders are kept in a second LRU (``max_decoders``); reopening one scans its
mini-MP4 again but decodes nothing.

Frames are held as the decoder writes them, ``[H, W, 3]``, and turned into lerobot's ``[3, H, W]`` while
being written into the batch, by OpenCV's SIMD de-interleave (``cv2.split`` into the three planes of the
output), a fraction of numpy's strided transpose copy (figures in ``docs/design.md``). Copies stay
single-threaded (numpy, OpenCV on one plane set), while torch's intra-op thread pool turns each small copy
into a cross-thread handoff that costs milliseconds on a busy machine.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torchcodec.decoders import VideoDecoder

from lerobot_wds.core.lru import CacheStats, LruCache
from lerobot_wds.reader.decoding.budget import FrameBudget
from lerobot_wds.reader.decoding.decode import (
    UINT8_SCALE,
    DecodeConfig,
    decode_frame,
    decode_range,
    gop_starts,
    open_decoder,
)
from lerobot_wds.reader.decoding.gops import RUN_FRAMES, decoded_whole, gop_span
from lerobot_wds.reader.parsing.episode import Episode


def _cv2_split() -> Callable[..., Any] | None:
    """OpenCV's ``cv2.split`` when some OpenCV build is installed (the ``opencv`` extra), else None."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2.split


CV2_SPLIT = _cv2_split()


def to_planes(hwc: np.ndarray, chw: np.ndarray, split: Callable[..., Any] | None = CV2_SPLIT) -> None:
    """Writes an ``[H, W, 3]`` uint8 frame into the ``[3, H, W]`` uint8 array ``chw`` (its planes contiguous).

    ``split`` is ``cv2.split`` when OpenCV is installed; without it numpy's transpose copy writes the same bytes.
    """
    planes = [chw[0], chw[1], chw[2]]
    contiguous = hwc.flags.c_contiguous and chw.flags.c_contiguous
    written = split(hwc, planes) if split is not None and contiguous else ()
    if len(written) != 3 or any(w is not p for w, p in zip(written, planes, strict=False)):
        # OpenCV allocates new planes instead of writing into ours when they do not fit; never the case for
        # the batch rows this module writes, but then numpy's transpose copy gives the same values
        np.copyto(chw, hwc.transpose(2, 0, 1))


@dataclass
class _Sweep:
    """Where a camera's decoder stands in a long-GOP unit's pass, and the unit's frames already used (dropped)."""

    needs: Sequence[int]  # the unit's frames of this camera (identifies the unit)
    at: int | None  # the episode frame the decoder returned last (None: unknown, the next decode seeks)
    done: set[int] = field(default_factory=set)


@dataclass(frozen=True, eq=False)
class Visit:
    """One open episode visit: its episode and an id unique in the worker (an episode may be open twice)."""

    episode: Episode
    vid: int


class FramePool:
    """Decoded frames and decoders of the open visits of one worker (see the module docstring)."""

    def __init__(self, config: DecodeConfig | None = None) -> None:
        self.config = config = config or DecodeConfig()
        self.budget = FrameBudget(config.frame_cache_bytes)
        self._frames: LruCache[np.ndarray] = LruCache(self.budget.capacity, cost=lambda a: a.nbytes)
        self._decoders: LruCache[VideoDecoder] = LruCache(config.max_decoders)
        self._gops: dict[tuple[int, str], list[int]] = {}
        self._sweeps: dict[tuple[int, str], _Sweep] = {}
        self.decoded_frames = self.delivered_frames = self.decode_calls = self.decode_passes = 0

    def reserve(self, nbytes: int) -> None:
        """Reserves ``nbytes`` of decoded frames planned at once (an automatic budget grows, a user's stays)."""
        self.budget.reserve(nbytes)
        self._frames.capacity = self.budget.capacity

    def gops(self, visit: Visit, camera: str) -> list[int]:
        """GOP starts (episode frames) of a camera of the visit; opens its decoder the first time."""
        key = (visit.vid, camera)
        if key not in self._gops:
            self._gops[key] = gop_starts(self._decoder(visit, camera), visit.episode, camera)
        return self._gops[key]

    def gather_into(
        self, visit: Visit, camera: str, positions: Sequence[int], out: np.ndarray, needs: Sequence[int] = ()
    ) -> None:
        """Writes frames at episode positions into ``out`` ([T,C,H,W], or [C,H,W] for one position).

        ``needs`` (sorted) are the frames the asking unit will use: decoding a GOP keeps those of them it
        passes. ``out`` may be float32: frames are then written as ``uint8 / 255`` in float32 (lerobot's
        arithmetic).
        """
        rows = out[None] if out.ndim == 3 else out
        self.delivered_frames += len(positions)
        for i, p in enumerate(positions):
            src = self._frame(visit, camera, p, needs)
            if rows.dtype == np.uint8:
                to_planes(src, rows[i])
            else:
                np.divide(src.transpose(2, 0, 1), UINT8_SCALE, out=rows[i], dtype=np.float32)

    def get(self, visit: Visit, camera: str, positions: Sequence[int], needs: Sequence[int] = ()) -> np.ndarray:
        """Returns frames at episode positions as a new uint8 [T,C,H,W] array."""
        cam = visit.episode.meta.cameras[camera]
        out = np.empty((len(positions), 3, cam.height, cam.width), np.uint8)
        self.gather_into(visit, camera, positions, out, needs)
        return out

    def drop(self, visit: Visit, camera: str, frames: Sequence[int]) -> None:
        """Frees frames after their last use (not evictions: the plan is done with them)."""
        sweep = self._sweeps.get((visit.vid, camera))
        for f in frames:
            self._frames.discard((visit.vid, (camera, f)))
            if sweep is not None:
                sweep.done.add(f)

    def release(self, visit: Visit) -> None:
        """Frees everything of a finished visit: its frames, decoders and GOP tables."""
        self._frames.drop_group(visit.vid)
        self._decoders.drop_group(visit.vid)
        for camera in visit.episode.videos:
            self._gops.pop((visit.vid, camera), None)
            self._sweeps.pop((visit.vid, camera), None)

    def stats(self) -> dict[str, CacheStats]:
        """``frames``: lookups served decoded (hits) or decoded (misses), evictions, bytes and peak bytes;
        ``decoders``: decoder lookups, reopenings (misses) and LRU closes (evictions)."""
        return {"frames": self._frames.stats(), "decoders": self._decoders.stats()}

    def _decoder(self, visit: Visit, camera: str) -> VideoDecoder:
        key = (visit.vid, camera)
        decoder = self._decoders.get(key)
        if decoder is None:
            decoder = open_decoder(visit.episode, camera, self.config.num_ffmpeg_threads)
            self._decoders.put(key, decoder)
            sweep = self._sweeps.get(key)
            if sweep is not None:
                sweep.at = None  # a new decoder starts at no position
        return decoder

    def _frame(self, visit: Visit, camera: str, frame: int, needs: Sequence[int]) -> np.ndarray:
        key = (visit.vid, (camera, frame))
        got = self._frames.get(key)
        if got is not None:
            return got
        run = self._run(visit, camera, frame, needs)
        if run is None:  # a long GOP: the decoder steps forward to this frame (gops.streamed)
            return self._stream(visit, camera, frame, needs)
        sweep = self._sweeps.get((visit.vid, camera))
        if sweep is not None:
            sweep.at = None  # the range below moves the decoder
        decoded = decode_range(self._decoder(visit, camera), visit.episode, camera, run[0], run[2])
        self.decode_calls += 1
        self.decoded_frames += len(decoded)
        first = run[0]
        kept = {frame, *run[1]}
        # views when every decoded frame is kept and the run is short (one or two frames, or a unit's whole run:
        # all of it is alive from now until the unit ends); else a copy per kept frame, so each frame's memory
        # is freed when it is dropped (a view pins the whole run)
        whole = len(kept) == len(decoded) and (len(decoded) <= 2 or decoded_whole(needs))
        for f in kept:
            self._frames.put((visit.vid, (camera, f)), decoded[f - first] if whole else decoded[f - first].copy())
        return decoded[frame - first]

    def _stream(self, visit: Visit, camera: str, frame: int, needs: Sequence[int]) -> np.ndarray:
        """Decodes a frame of a long GOP by stepping the decoder forward from where it stopped, keeping the frames
        of ``needs`` it passes on the way that the unit has not used yet (so a unit whose anchors ask for frames in
        ascending order decodes its episode in one pass); a frame behind the decoder starts a new pass (a seek to
        its keyframe), which keeps nothing it passes."""
        key = (visit.vid, camera)
        sweep = self._sweeps.get(key)
        if sweep is None or sweep.needs is not needs:  # a new unit: what it has used is its own
            sweep = self._sweeps[key] = _Sweep(needs, sweep.at if sweep is not None else None)
        decoder = self._decoder(visit, camera)
        passed: Sequence[int] = ()
        if sweep.at is not None and sweep.at < frame:
            ahead = needs[bisect.bisect_right(needs, sweep.at) : bisect.bisect_left(needs, frame)]
            passed = [f for f in ahead if f not in sweep.done and (visit.vid, (camera, f)) not in self._frames]
        else:
            self.decode_passes += 1
        for f in passed:
            self._frames.put((visit.vid, (camera, f)), decode_frame(decoder, visit.episode, camera, f))
        one = decode_frame(decoder, visit.episode, camera, frame)
        sweep.at = frame
        self.decode_calls += 1
        self.decoded_frames += 1 + len(passed)
        self._frames.put((visit.vid, (camera, frame)), one)
        return one

    def _run(
        self, visit: Visit, camera: str, frame: int, needs: Sequence[int]
    ) -> tuple[int, Sequence[int], int] | None:
        """What to decode for ``frame``: the unit's whole short run (:func:`gops.decoded_whole`), None for a frame
        of a long GOP (:func:`gops.streamed`: decoded alone), else (first, needed frames of its GOP, stop)."""
        if decoded_whole(needs) and needs[0] <= frame <= needs[-1]:
            return needs[0], needs, needs[-1] + 1
        lo, hi = gop_span(frame, self.gops(visit, camera), visit.episode.length)
        if hi - lo > RUN_FRAMES:
            return None
        needed = needs[bisect.bisect_left(needs, lo) : bisect.bisect_left(needs, hi)]
        return min(frame, *needed[:1]), needed, max(frame, *needed[-1:]) + 1
