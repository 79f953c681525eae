"""The batch-mixing guarantee: how many decode units the scheduler keeps open, and saying when it cannot.

A batch mixes like i.i.d. sampling when its samples come from many episodes. The scheduler (:mod:`pool`)
draws each anchor from one of its open visits chosen uniformly, so with ``n`` visits open a batch of ``b``
anchors holds ``n * (1 - (1 - 1/n) ** b)`` distinct episodes on average (:func:`expected_distinct`). The
target is ``TARGET_SHARE`` of the batch distinct (10 of 16, what i.i.d. sampling over a few dozen episodes
gives); :func:`open_target` is the number of open visits that reaches it with headroom for the pool's churn
(measured on the scheduler itself: 24 open visits give 11.4-11.8 distinct per batch of 16).

Three things can bound the mix below the target, and each is said once per process with its numbers
(:func:`warn_once`): a frame budget the user set that holds fewer open visits than the target needs, an
``open_episode_bytes`` too small for the target's compressed videos, and a reader whose share of the
episodes is smaller than the target (many workers on a small dataset).
:class:`MixingTally` counts the mixing a reader actually delivered (``LeRobotWdsDataset.stats()``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Iterable

log = logging.getLogger(__name__)

DEFAULT_BATCH = 16  # the batch a per-sample reader is measured against (DataLoader(ds, batch_size=16))
TARGET_SHARE = 10 / 16  # distinct episodes per batch the guarantee aims at, as a share of the batch
OPEN_PER_SAMPLE = 1.5  # open visits per batch sample: headroom over the i.i.d. formula for the pool's churn
_WARNED: set[str] = set()


def expected_distinct(open_visits: int, batch: int) -> float:
    """Mean distinct episodes in ``batch`` uniform draws (with replacement) from ``open_visits`` visits."""
    if open_visits < 1 or batch < 1:
        return 0.0
    return open_visits * (1.0 - (1.0 - 1.0 / open_visits) ** batch)


def target_distinct(batch: int) -> float:
    """The distinct episodes per batch the guarantee promises (10 for a batch of 16)."""
    return TARGET_SHARE * batch


def open_target(batch: int | None) -> int:
    """Open visits the scheduler keeps (when the reader has that many episodes) for a batch of ``batch``."""
    return max(1, math.ceil(OPEN_PER_SAMPLE * (batch or DEFAULT_BATCH)))


def warn_once(kind: str, message: str, *args: object) -> None:
    """Logs a warning the first time ``kind`` is seen in this process."""
    if kind not in _WARNED:
        _WARNED.add(kind)
        log.warning(message, *args)


def warn_budget_bounds_mix(budget: int, fit: int, unit_bytes: int, batch: int | None) -> None:
    """Says that a user-set ``frame_cache_bytes`` holds only ``fit`` open visits of ``unit_bytes`` each."""
    b = batch or DEFAULT_BATCH
    target = open_target(batch)
    warn_once(
        "budget",
        "DecodeConfig.frame_cache_bytes=%d MiB holds %d open episodes at this frame size and window (%.1f MiB "
        "each): batches of %d mix about %.1f distinct episodes; the target of %.1f needs %d open, about %d MiB "
        "(leave frame_cache_bytes at its default None to size it automatically)",
        budget >> 20,
        fit,
        unit_bytes / 2**20,
        b,
        expected_distinct(fit, b),
        target_distinct(b),
        target,
        math.ceil(target * unit_bytes / 2**20),
    )


def warn_open_bytes_bound_mix(budget: int, fit: int, episode_bytes: int, batch: int | None) -> None:
    """Says that ``DecodeConfig.open_episode_bytes`` holds only ``fit`` open episodes' compressed videos."""
    b = batch or DEFAULT_BATCH
    warn_once(
        "open_bytes",
        "DecodeConfig.open_episode_bytes=%d MiB holds %d open episodes of this dataset (%.1f MiB of video each): "
        "batches of %d mix about %.1f distinct episodes; the target of %.1f needs %d open, about %d MiB",
        budget >> 20,
        fit,
        episode_bytes / 2**20,
        b,
        expected_distinct(fit, b),
        target_distinct(b),
        open_target(batch),
        math.ceil(open_target(batch) * episode_bytes / 2**20),
    )


def warn_share_bounds_mix(episodes: int, readers: int, batch: int | None) -> None:
    """Says that a reader's ``episodes`` (of ``readers`` readers) are too few for the mixing target."""
    b = batch or DEFAULT_BATCH
    if expected_distinct(episodes, b) >= target_distinct(b):
        return
    warn_once(
        "share",
        "%d readers (ranks x workers) leave a reader %d episodes: batches of %d mix at most about %.1f distinct "
        "episodes (target %.1f); fewer DataLoader workers or more episodes restore the mix",
        readers,
        episodes,
        b,
        expected_distinct(episodes, b),
        target_distinct(b),
    )


class MixingTally:
    """Distinct episodes per batch of the batches (or runs of ``batch`` samples) a reader delivered."""

    def __init__(self, batch: int | None) -> None:
        self.batch = batch or DEFAULT_BATCH
        self.batches = self.distinct = 0
        self._run: list[Hashable] = []

    def add(self, episodes: Iterable[Hashable]) -> None:
        """Counts delivered samples by episode; every ``batch`` of them closes one batch."""
        for e in episodes:
            self._run.append(e)
            if len(self._run) == self.batch:
                self.batches += 1
                self.distinct += len(set(self._run))
                self._run.clear()

    @property
    def mean(self) -> float:
        return self.distinct / self.batches if self.batches else 0.0
