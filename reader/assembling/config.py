"""Options of the last stage, where samples and batches are built (:mod:`assemble`, :mod:`batch_slots`)."""

from __future__ import annotations

from dataclasses import dataclass

from lerobot_wds.reader.errors import OptionError


@dataclass(frozen=True)
class AssembleConfig:
    """How a worker builds and hands out batches.

    Attributes:
        batch_slots: shared-memory batch slots a DataLoader worker keeps for reuse when the dataset builds
            batches (``batch_size=``); 0 makes every batch fresh shared memory (see :mod:`batch_slots`).
        mapped_batch_bytes: a batch whose images take at most this many bytes is written through the worker's
            mapping of its slot (one copy less; its few slots stay in the worker's RSS); a larger one through
            the slot's shared-memory file, so the batches in flight are in no worker's RSS (see
            :mod:`batch_slots`).
        tune_worker_malloc: inside DataLoader workers, keep freed frame buffers in the heap for reuse instead
            of page-faulting fresh ones per decoded block (glibc only; see :mod:`worker_memory`).
    """

    batch_slots: int = 8
    mapped_batch_bytes: int = 64 * 1024 * 1024
    tune_worker_malloc: bool = True

    def __post_init__(self) -> None:
        for name in ("batch_slots", "mapped_batch_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OptionError(f"AssembleConfig.{name} must be an integer >= 0, got {value!r}")
        if not isinstance(self.tune_worker_malloc, bool):
            raise OptionError(
                f"AssembleConfig.tune_worker_malloc must be True or False, got {self.tune_worker_malloc!r}"
            )
