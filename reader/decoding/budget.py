"""The decoded-frame budget of one worker, owned by its frame pool (``FramePool.budget``).

A user-set ``DecodeConfig.frame_cache_bytes`` is a hard budget. Left at None, the budget is
``DEFAULT_FRAME_BYTES``, and grows to whatever the scheduler reserves for the open visits up to the mixing
target (:mod:`~lerobot_wds.reader.scheduling.mixing`): the target is admitted past the default, never past a
user's number, and never past the worker's memory ceiling (which :mod:`~lerobot_wds.reader.scheduling.admission`
holds). Admission asks :meth:`FrameBudget.admits` and reports what it planned with :meth:`FrameBudget.reserve`;
the pool's frame cache is bounded by :attr:`FrameBudget.capacity`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot_wds.reader.decoding.decode import DEFAULT_FRAME_BYTES


@dataclass
class FrameBudget:
    """Decoded-frame bytes a worker may hold: a user's fixed number, or the default grown to what was reserved."""

    fixed: int | None = None  # DecodeConfig.frame_cache_bytes: hard, or None (automatic)
    reserved: int = 0  # the most the scheduler reserved for its open visits

    @property
    def base(self) -> int:
        """The budget the pool is held under beyond the mixing target: the user's, else the default."""
        return DEFAULT_FRAME_BYTES if self.fixed is None else self.fixed

    @property
    def capacity(self) -> int:
        """What the frame cache may hold now: the user's budget, or the default grown to the reservations."""
        return self.base if self.fixed is not None else max(self.base, self.reserved)

    def admits(self, planned: int, below_target: bool) -> bool:
        """Whether decoded frames planned at ``planned`` bytes fit; ``below_target``: the pool has fewer visits
        open than the mixing target, which an automatic budget grows for."""
        return planned <= self.base or (self.fixed is None and below_target)

    def reserve(self, planned: int) -> None:
        """Records that ``planned`` bytes of decoded frames were planned at once (an automatic budget grows)."""
        self.reserved = max(self.reserved, planned)
