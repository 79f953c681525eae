"""The batch mixing a reader delivered: distinct episodes per batch, counted as samples leave (``stats()``)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable


class MixingTally:
    """Distinct episodes per batch of the batches (or runs of ``batch`` samples) a reader delivered."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.batches = self.distinct = 0
        self.least = 0  # the fewest distinct episodes of any batch (0 before the first)
        self._run: list[Hashable] = []

    def add(self, episodes: Iterable[Hashable]) -> None:
        """Counts delivered samples by episode; every ``batch`` of them closes one batch."""
        for e in episodes:
            self._run.append(e)
            if len(self._run) == self.batch:
                d = len(set(self._run))
                self.least = d if self.batches == 0 else min(self.least, d)
                self.batches += 1
                self.distinct += d
                self._run.clear()

    @property
    def mean(self) -> float:
        return self.distinct / self.batches if self.batches else 0.0
