"""What each reader skipped and how its reads fared, readable from the main process while workers read.

A worker's :class:`~lerobot_wds.reader.on_error.ErrorCounter` and
:class:`~lerobot_wds.reader.fetching.fetch.ReadCounters` live in the worker, so the dataset object the
training loop holds would never see their counts. The dataset therefore owns a small shared-memory board
(``multiprocessing.RawArray``, shared like :class:`~lerobot_wds.reader.planning.epoch.SharedEpoch`: inherited under
fork, passed by handle under spawn/forkserver, a private copy when pickled anywhere else) with one row per
reader of this process: worker ``w`` of a DataLoader (or the process itself with ``num_workers=0``, row 0).

A row is reset when its reader starts an iteration and stamped with (start time, epoch, worker count); each
skip then updates its skip counts and its last reason, each failed read attempt its retry and timeout counts,
each batch its mixing (batches and their distinct episodes, see :mod:`mixing`).
:meth:`ReaderBoard.totals` sums the rows of the newest iteration (the rows sharing the newest row's epoch and
worker count, so rows of an earlier DataLoader with more workers are left out). Read once the epoch is done
(the DataLoader has handed out its last batch, which every worker sends only after its iterator finished) the
counts are final; read mid-epoch, they are what happened so far. Counts are per reader: an episode whose
anchors two readers share (see :mod:`splitting`) counts once for each reader that skipped it. Rows hold
``MAX_READERS`` readers; a worker beyond that still skips, retries and logs, uncounted here.
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
    from lerobot_wds.reader.fetching.fetch import ReadCounters
    from lerobot_wds.reader.on_error import ErrorCounter
    from lerobot_wds.reader.scheduling.mixing import MixingTally

log = logging.getLogger(__name__)

MAX_READERS = 128
ROW_BYTES = 1024
# int64 fields: start_ns, epoch, num_workers, skipped_shards, skipped_episodes, read_retries, read_timeouts,
# length of the message, batches counted for mixing, their summed distinct episodes
_FIELDS = 10
_TEXT = ROW_BYTES - 8 * _FIELDS  # bytes of the last reason (UTF-8, cut at a character boundary)


@dataclass(frozen=True)
class BoardTotals:
    """One iteration over all its readers: skips (``messages``: the last reason of each reader that skipped),
    read attempts that were retried / that timed out, and the batch mixing each reader delivered."""

    skipped_shards: int
    skipped_episodes: int
    messages: tuple[str, ...]
    read_retries: int = 0
    read_timeouts: int = 0
    mixing: tuple[tuple[int, int, int], ...] = ()  # per reader: (worker, batches, summed distinct episodes)


class ReaderRow:
    """One reader's row of the board (a view into shared memory)."""

    def __init__(self, row: np.ndarray) -> None:
        self._ints = row[: 8 * _FIELDS].view(np.int64)
        self._text = row[8 * _FIELDS :]
        self._stamp = -1

    def reset(self, epoch: int, num_workers: int) -> None:
        """Starts this reader's iteration on the row; only this view writes to it until the next reset."""
        self._ints[3:] = 0
        self._stamp = time.time_ns()
        self._ints[:3] = (self._stamp, epoch, num_workers)

    def _current(self) -> bool:
        # a read of an abandoned iteration may still be retrying in its background thread after the next
        # iteration reset the row (through another view): its counts must not land in the new iteration's row
        return int(self._ints[0]) == self._stamp

    def record(self, counter: ErrorCounter) -> None:
        """Copies the counter's counts and last message (called after every skip)."""
        if not self._current():
            return
        text = counter.messages[-1].encode("utf-8")[:_TEXT].decode("utf-8", "ignore").encode("utf-8")
        self._text[: len(text)] = np.frombuffer(text, np.uint8)
        self._ints[7] = len(text)
        self._ints[3:5] = (counter.skipped_shards, counter.skipped_episodes)

    def record_mixing(self, tally: MixingTally) -> None:
        """Copies the mixing delivered so far (called after every batch)."""
        if self._current():
            self._ints[8:10] = (tally.batches, tally.distinct)

    def record_reads(self, counters: ReadCounters) -> None:
        """Copies the read counters (called after every failed read attempt)."""
        if self._current():
            self._ints[5:7] = (counters.retries, counters.timeouts)


class ReaderBoard:
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
                "worker %d is beyond the %d rows of the reader board: its skips and retries are logged only",
                reader,
                MAX_READERS,
            )
            return None
        return ReaderRow(self._rows()[reader])

    def totals(self) -> BoardTotals | None:
        """Counts of the newest iteration (None before any reader started one)."""
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
            bytes(rows[r, 8 * _FIELDS : 8 * _FIELDS + int(ints[r, 7])]).decode("utf-8") for r in keep if ints[r, 7]
        )
        sums = [int(ints[keep, i].sum()) for i in (3, 4, 5, 6)]
        mixing = tuple((r, int(ints[r, 8]), int(ints[r, 9])) for r in keep)
        return BoardTotals(sums[0], sums[1], messages, read_retries=sums[2], read_timeouts=sums[3], mixing=mixing)

    def __getstate__(self) -> dict[str, Any]:
        if get_spawning_popen() is not None:
            return {"shared": self._raw}
        return {"plain": bytes(self._raw)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._raw = state["shared"]
        else:
            self.__init__(state["plain"])  # type: ignore[misc]
