"""Which visits the pool may hold open: one worker's memory, planned, under a hard ceiling.

A visit costs its compressed mini-MP4s, the planned peak of its decoded frames (its largest unit, see
:mod:`units`) and a decoder per camera (more for cameras whose frames are streamed from long GOPs: a decoder
kept at its position holds reference pictures). :class:`Admission` keeps the sum of the
open visits' costs (and of finished visits whose frames a batch still uses) under
``DecodeConfig.memory_limit_bytes``, whatever the GOP, frame size, window or batch, and under the budgets the
user set. Up to the mixing target it admits past the default frame and open-bytes budgets (they size the pool
beyond the target); the ceiling it never passes, except for the one visit a pool always holds. The decoded-frame
budget is the frame pool's (:class:`~lerobot_wds.reader.decoding.budget.FrameBudget`): admission asks it and
reserves in it what it planned.

One :class:`Admission` serves a reader's passes in turn (:meth:`Admission.new_pass`), so its :attr:`peak` is the
most the reader planned at once (``stats()["memory"]["planned_peak"]``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lerobot_wds.reader.decoding.decode import DEFAULT_OPEN_BYTES

if TYPE_CHECKING:
    from lerobot_wds.reader.decoding.budget import FrameBudget
    from lerobot_wds.reader.decoding.frames import FramePool

# An open decoder (torchcodec over FFmpeg, one thread) holds about 1.6 MB of its own, and an H.264 decoder kept at
# its position in a long GOP about 11 bytes per pixel more (reference pictures): 2.0 / 2.6 / 4.9 MB at 160x120 /
# 320x240 / 480x640 (RSS of 48 decoders, each after one frame).
DECODER_FIXED_BYTES = 1792 * 1024
DECODER_BYTES_PER_PIXEL = 11

Bound = Literal["memory", "frames", "open_bytes", "active"]


def decoder_nbytes(width: int, height: int, streamed: bool = True) -> int:
    """Planned memory of an open decoder; ``streamed``: kept at its position in a long GOP (reference pictures)."""
    return DECODER_FIXED_BYTES + (DECODER_BYTES_PER_PIXEL * width * height if streamed else 0)


@dataclass(frozen=True)
class PoolBounds:
    """What bounds one pass's pool of open visits.

    Attributes:
        active: most visits open at once.
        target: visits the mixing target needs open; admitted past the default budgets, never past ``memory``.
        open_bytes: a user-set bound on the open visits' compressed bytes (hard), or None likewise.
        memory: the worker's ceiling on frames, compressed videos and open decoders together.
    """

    active: int
    target: int
    open_bytes: int | None
    memory: int


@dataclass
class Cost:
    """The planned memory of one open visit."""

    frames: int  # planned peak of decoded frames (its largest unit)
    compressed: int  # its mini-MP4s
    decoders: int  # decoders kept open at their position (streamed cameras)

    @property
    def total(self) -> int:
        return self.frames + self.compressed + self.decoders


class Admission:
    """Planned memory of the pool (see the module docstring) and the admission rule, for the decoded frames of
    ``pool`` (whose budget it asks)."""

    def __init__(self, bounds: PoolBounds, pool: FramePool) -> None:
        self.bounds = bounds
        self.pool = pool
        self.peak = 0
        self.new_pass()

    @property
    def budget(self) -> FrameBudget:
        """The frame pool's decoded-frame budget."""
        return self.pool.budget

    def new_pass(self) -> None:
        """Starts a pass with an empty pool (the peak is kept)."""
        self.frames = self.compressed = self.decoders = self.held = 0
        self._closing: deque[tuple[int, int]] = deque()  # (anchors yielded at its end, frame bytes still used)

    @property
    def total(self) -> int:
        return self.frames + self.compressed + self.decoders + self.held

    def blocked_by(self, cost: Cost, open_now: int) -> Bound | None:
        """The bound that keeps a visit of ``cost`` out of a pool of ``open_now`` visits, or None if it fits."""
        b = self.bounds
        if open_now == 0:
            return None  # a pool always holds one visit, whatever it costs
        if open_now >= b.active:
            return "active"
        if self.total + cost.total > b.memory:
            return "memory"
        below_target = open_now < b.target
        if not self.budget.admits(self.frames + self.held + cost.frames, below_target):
            return "frames"
        cap = DEFAULT_OPEN_BYTES if b.open_bytes is None else b.open_bytes
        if self.compressed + cost.compressed > cap and not (b.open_bytes is None and below_target):
            return "open_bytes"
        return None

    def add(self, cost: Cost) -> None:
        """An admitted visit: its cost is planned, its frames reserved in the frame pool's budget."""
        self.frames += cost.frames
        self.compressed += cost.compressed
        self.decoders += cost.decoders
        self.peak = max(self.peak, self.total)
        self.pool.reserve(self.frames + self.held)

    def finish(self, cost: Cost, yielded: int) -> None:
        """A visit's last anchor was yielded: its frames stay planned until its batch is built."""
        self.frames -= cost.frames
        self.compressed -= cost.compressed
        self.decoders -= cost.decoders
        self.held += cost.frames
        self._closing.append((yielded, cost.frames))

    def settle(self, yielded: int, lookahead: int) -> None:
        """Frees the frames of finished visits whose batch has been built (``lookahead`` anchors later)."""
        while self._closing and yielded - self._closing[0][0] >= lookahead:
            self.held -= self._closing.popleft()[1]
