"""What ``on_error="skip"`` dropped, readable from the main process while DataLoader workers do the reading.

A worker's :class:`~lerobot_wds.reader.stages.ErrorCounter` lives in the worker, so the dataset object the
training loop holds would never see its counts. The dataset therefore owns a small shared-memory board
(``multiprocessing.RawArray``, shared like :class:`~lerobot_wds.reader.epoch.SharedEpoch`: inherited under
fork, passed by handle under spawn/forkserver, a private copy when pickled anywhere else) with one row per
reader of this process: worker ``w`` of a DataLoader (or the process itself with ``num_workers=0``, row 0).

A row is reset when its reader starts an iteration and stamped with (start time, epoch, worker count); each
skip then updates its counts and its last reason. :meth:`SkipBoard.totals` sums the rows of the newest
iteration (the rows sharing the newest row's epoch and worker count, so rows of an earlier DataLoader with
more workers are left out). Read once the epoch is done (the DataLoader has handed out its last batch, which
every worker sends only after its iterator finished) the counts are final; read mid-epoch, they are what was
skipped so far. Counts are per reader: an episode whose anchors two readers share (see :mod:`splitting`)
counts once for each reader that skipped it. Rows hold ``MAX_READERS`` readers; a worker beyond that still
skips and logs, uncounted here.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import time
from dataclasses import dataclass
from multiprocessing.context import get_spawning_popen
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lerobot_wds.reader.stages import ErrorCounter

log = logging.getLogger(__name__)

MAX_READERS = 128
ROW_BYTES = 1024
_FIELDS = 6  # int64: start_ns, epoch, num_workers, skipped_shards, skipped_episodes, message length
_TEXT = ROW_BYTES - 8 * _FIELDS  # bytes of the last reason (UTF-8, cut at a character boundary)


@dataclass(frozen=True)
class SkipTotals:
    """Skips of one iteration over all its readers; ``messages``: the last reason of each reader that skipped."""

    skipped_shards: int
    skipped_episodes: int
    messages: tuple[str, ...]


class ReaderRow:
    """One reader's row of the board (a view into shared memory)."""

    def __init__(self, row: np.ndarray) -> None:
        self._ints = row[: 8 * _FIELDS].view(np.int64)
        self._text = row[8 * _FIELDS :]

    def reset(self, epoch: int, num_workers: int) -> None:
        self._ints[3:] = 0
        self._ints[:3] = (time.time_ns(), epoch, num_workers)

    def record(self, counter: ErrorCounter) -> None:
        """Copies the counter's counts and last message (called after every skip)."""
        text = counter.messages[-1].encode("utf-8")[:_TEXT].decode("utf-8", "ignore").encode("utf-8")
        self._text[: len(text)] = np.frombuffer(text, np.uint8)
        self._ints[5] = len(text)
        self._ints[3:5] = (counter.skipped_shards, counter.skipped_episodes)


class SkipBoard:
    """The shared rows of every reader of one dataset object in this process tree (see the module docstring)."""

    def __init__(self, snapshot: bytes | None = None) -> None:
        self._raw: Any = multiprocessing.RawArray(ctypes.c_uint8, MAX_READERS * ROW_BYTES)
        if snapshot is not None:
            ctypes.memmove(self._raw, snapshot, len(snapshot))

    def _rows(self) -> np.ndarray:
        return np.frombuffer(self._raw, np.uint8).reshape(MAX_READERS, ROW_BYTES)

    def row(self, reader: int) -> ReaderRow | None:
        """The row of worker ``reader`` (0 without workers), None beyond ``MAX_READERS``."""
        if reader >= MAX_READERS:
            log.debug(
                "worker %d is beyond the %d rows of the skip board: its skips are logged only", reader, MAX_READERS
            )
            return None
        return ReaderRow(self._rows()[reader])

    def totals(self) -> SkipTotals | None:
        """Skips of the newest iteration (None before any reader started one)."""
        rows = self._rows()
        ints = rows[:, : 8 * _FIELDS].view(np.int64).reshape(MAX_READERS, _FIELDS).copy()
        if not ints[:, 0].any():
            return None
        newest = ints[int(np.argmax(ints[:, 0]))]
        epoch, workers = int(newest[1]), int(newest[2])
        keep = [
            r
            for r in range(min(workers, MAX_READERS))
            if ints[r, 0] and ints[r, 1] == epoch and ints[r, 2] == workers
        ]
        messages = tuple(
            bytes(rows[r, 8 * _FIELDS : 8 * _FIELDS + int(ints[r, 5])]).decode("utf-8") for r in keep if ints[r, 5]
        )
        return SkipTotals(int(ints[keep, 3].sum()), int(ints[keep, 4].sum()), messages)

    def __getstate__(self) -> dict[str, Any]:
        if get_spawning_popen() is not None:
            return {"shared": self._raw}
        return {"plain": bytes(self._raw)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._raw = state["shared"]
        else:
            self.__init__(state["plain"])  # type: ignore[misc]
