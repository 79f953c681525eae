"""Where a conversion's time goes: seconds per stage, summed over the threads that ran it.

Stages run on several threads at once (builds on the episode pool, uploads on their own thread), so a stage's
seconds are thread-seconds and their sum can exceed the run's wall time. ``remux`` excludes the sample reads it
makes (they count as ``video_reads``), and ``tar`` excludes ``hashing``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = ("rows", "mp4_index", "video_reads", "remux", "rows_out", "tar", "hashing", "upload", "build_wait")


class StageTimes:
    """Thread-safe seconds per stage (one of ``STAGES``), with each thread's own running totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds = dict.fromkeys(STAGES, 0.0)
        self._local = threading.local()

    def add(self, stage: str, seconds: float) -> None:
        if stage not in self._seconds:
            raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}")
        with self._lock:
            self._seconds[stage] += seconds
        mine = self._thread_totals()
        mine[stage] = mine.get(stage, 0.0) + seconds

    def _thread_totals(self) -> dict[str, float]:
        if not hasattr(self._local, "totals"):
            self._local.totals = {}
        return self._local.totals

    def thread_seconds(self, stage: str) -> float:
        """The calling thread's seconds in ``stage`` so far (to take a nested stage out of an outer one)."""
        return self._thread_totals().get(stage, 0.0)

    @contextmanager
    def timed(self, stage: str, *, excluding: str | None = None) -> Iterator[None]:
        """Adds the block's duration to ``stage``, less the time this thread spent in ``excluding`` meanwhile."""
        before = self.thread_seconds(excluding) if excluding else 0.0
        t0 = time.perf_counter()
        try:
            yield
        finally:
            inner = self.thread_seconds(excluding) - before if excluding else 0.0
            self.add(stage, time.perf_counter() - t0 - inner)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return {k: round(v, 3) for k, v in self._seconds.items()}

    def line(self) -> str:
        """``stage 1.2 s, ...`` for the stages that took any time, in pipeline order."""
        d = self.as_dict()
        return ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in d.items() if v > 0)
