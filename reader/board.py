"""Every reader's counters (skips, reads, decoding), summed in the main process while workers read.

A worker's :class:`~lerobot_wds.reader.on_error.ErrorCounter` and
:class:`~lerobot_wds.reader.fetching.fetch.ReadCounters` live in the worker, so the dataset object the
training loop holds would never see their counts. The dataset therefore owns a small shared-memory board
(``multiprocessing.RawArray``, shared like :class:`~lerobot_wds.reader.planning.epoch.SharedEpoch`: inherited under
fork, passed by handle under spawn/forkserver, a private copy when pickled anywhere else) with one row per
reader of this process: worker ``w`` of a DataLoader (or the process itself with ``num_workers=0``, row 0).

A row holds every counter named in :data:`COUNTERS` (skips, read retries and timeouts, the frame and decoder
caches' counters, decoded and delivered frames, batch slots, the batch mixing delivered: batches and their
summed distinct episodes): adding a counter is one name there, and then
``row.set({name: value})`` wherever the reader knows it. A row is reset when its reader starts an iteration
and stamped with (start time, epoch, worker count); each skip then updates its skip counts and its last
reason, each failed read attempt its retry and timeout counts, and the reader publishes its decode counters as
it goes (at most every ``PUBLISH_EVERY_S`` and when its iteration ends). :meth:`ReaderBoard.totals` sums every
counter over the rows of the newest iteration (the rows sharing the newest row's epoch and
worker count, so rows of an earlier DataLoader with more workers are left out). Read once the epoch is done
(the DataLoader has handed out its last batch, which every worker sends only after its iterator finished) the
counts are final; read mid-epoch, they are what happened so far. Counts are summed over readers, except
``skipped_episodes``: an episode whose anchors two readers share (see :mod:`splitting`) counts once (a row
records its reader's first ``SKIPPED_IDS`` skipped episodes); gauges (``size``, ``cost``, ``capacity``,
``peak_cost``) are summed over the readers too. Rows hold
``MAX_READERS`` readers; a worker beyond that still skips, retries and logs, uncounted here.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.context import get_spawning_popen
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lerobot_wds.reader.assembling.batch_slots import SlotRing
    from lerobot_wds.reader.assembling.mixing_tally import MixingTally
    from lerobot_wds.reader.fetching.fetch import ReadCounters
    from lerobot_wds.reader.on_error import ErrorCounter
    from lerobot_wds.reader.scheduling.admission import Admission

log = logging.getLogger(__name__)

MAX_READERS = 128
ROW_BYTES = 1024
PUBLISH_EVERY_S = 0.1  # a reader's decode counters reach its row at most this often, and when it ends

_CACHE = ("hits", "misses", "evictions", "size", "cost", "capacity", "peak_cost")
# Every counter of a row, summed over readers by totals(); a dotted name nests in stats() ("frames.hits").
COUNTERS: tuple[str, ...] = (
    "skipped_shards",
    "skipped_episodes",
    "read_retries",
    "read_timeouts",
    "remote_bytes",
    "cache.hits",
    "cache.misses",
    "cache.read_bytes",
    "cache.evictions",
    "cache.size",
    *(f"frames.{c}" for c in _CACHE),
    *(f"decoders.{c}" for c in _CACHE),
    "decoded_frames",
    "delivered_frames",
    "decode_calls",
    "decode_passes",
    "batch_slots.created",
    "batch_slots.reused",
    "mixing.batches",
    "mixing.distinct",
    "mixing.least",
    "mixing.target",
    "memory.planned_peak",
    "memory.rss_peak",
)
# counters that are per reader, not additive: totals() keeps the largest (memory) or reports them per reader
_PER_READER = ("cache.size", "mixing.least", "mixing.target", "memory.planned_peak", "memory.rss_peak")
_INDEX = {name: i for i, name in enumerate(COUNTERS)}
# int64 header: start_ns, epoch, num_workers, length of the message; then the counters
_HEADER = 4
_FIELDS = _HEADER + len(COUNTERS)
# the first SKIPPED_IDS episodes a reader skipped, so that one whose anchors two readers share counts once
SKIPPED_IDS = 16
_TEXT_AT = 8 * (_FIELDS + SKIPPED_IDS)
TEXT_BYTES = ROW_BYTES - _TEXT_AT  # bytes of the last reason (UTF-8, cut at a character boundary)


@dataclass(frozen=True)
class BoardTotals:
    """One iteration over all its readers: every counter summed (``counts``, by :data:`COUNTERS` name),
    ``messages``, the last skip reason of each reader that skipped, and ``mixing``, per reader:
    (worker, batches, summed distinct episodes)."""

    counts: dict[str, int]
    messages: tuple[str, ...]
    mixing: tuple[tuple[int, int, int, int, int], ...] = ()  # (reader, batches, distinct, least, target)

    @property
    def skipped_shards(self) -> int:
        return self.counts["skipped_shards"]

    @property
    def skipped_episodes(self) -> int:
        return self.counts["skipped_episodes"]

    @property
    def read_retries(self) -> int:
        return self.counts["read_retries"]

    @property
    def read_timeouts(self) -> int:
        return self.counts["read_timeouts"]


class ReaderRow:
    """One reader's row of the board (a view into shared memory)."""

    def __init__(self, row: np.ndarray) -> None:
        self._ints = row[: 8 * _FIELDS].view(np.int64)
        self._ids = row[8 * _FIELDS : _TEXT_AT].view(np.int64)
        self._text = row[_TEXT_AT:]
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

    def set(self, counts: Mapping[str, int]) -> None:
        """Writes these counters (names of :data:`COUNTERS`) of the current iteration."""
        if self._current():
            for name, value in counts.items():
                self._ints[_HEADER + _INDEX[name]] = value

    def record(self, counter: ErrorCounter) -> None:
        """Copies the counter's counts and last message (called after every skip)."""
        if not self._current():
            return
        text = counter.messages[-1].encode("utf-8")[:TEXT_BYTES].decode("utf-8", "ignore").encode("utf-8")
        self._text[: len(text)] = np.frombuffer(text, np.uint8)
        self._ints[3] = len(text)
        ids = sorted(counter.bad)[:SKIPPED_IDS]
        self._ids[: len(ids)] = ids
        self.set({"skipped_shards": counter.skipped_shards, "skipped_episodes": counter.skipped_episodes})

    def record_mixing(self, tally: MixingTally) -> None:
        """Copies the mixing delivered so far (called after every batch)."""
        self.set({"mixing.batches": tally.batches, "mixing.distinct": tally.distinct, "mixing.least": tally.least})

    def record_reads(self, counters: ReadCounters) -> None:
        """Copies the read counters (called after every read and every failed read attempt)."""
        c = counters.cache
        self.set(
            {
                "read_retries": counters.retries,
                "read_timeouts": counters.timeouts,
                "remote_bytes": counters.remote_bytes,
                "cache.hits": c.hits,
                "cache.misses": c.misses,
                "cache.read_bytes": c.cached_bytes,
                "cache.evictions": c.evictions,
                "cache.size": counters.cache_size,
            }
        )


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
            bytes(rows[r, _TEXT_AT : _TEXT_AT + int(ints[r, 3])]).decode("utf-8") for r in keep if ints[r, 3]
        )
        sums = ints[keep, _HEADER:].sum(axis=0)
        sums[_INDEX["skipped_episodes"]] = _distinct_skips(rows, ints, keep)
        counts = {name: int(sums[i]) for name, i in _INDEX.items()}
        for name in _PER_READER:
            counts[name] = int(ints[keep, _HEADER + _INDEX[name]].max()) if keep else 0
        cols = [_HEADER + _INDEX[f"mixing.{c}"] for c in ("batches", "distinct", "least", "target")]
        mixing = tuple((r, *(int(ints[r, c]) for c in cols)) for r in keep)
        return BoardTotals(counts, messages, mixing)  # type: ignore[arg-type]

    def __getstate__(self) -> dict[str, Any]:
        if get_spawning_popen() is not None:
            return {"shared": self._raw}
        return {"plain": bytes(self._raw)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._raw = state["shared"]
        else:
            self.__init__(state["plain"])  # type: ignore[misc]


def rss_peak_bytes() -> int:
    """This process's peak resident memory (``ru_maxrss``: opens no file, so descriptor counts stay put)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 0
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # kilobytes on Linux


def _distinct_skips(rows: np.ndarray, ints: np.ndarray, keep: list[int]) -> int:
    """Episodes skipped by the ``keep`` readers, one shared by several counted once (those beyond a row's
    ``SKIPPED_IDS`` recorded ones counted per reader)."""
    column = _HEADER + _INDEX["skipped_episodes"]
    ids: set[int] = set()
    beyond = 0
    for r in keep:
        n = int(ints[r, column])
        ids.update(rows[r, 8 * _FIELDS : _TEXT_AT].view(np.int64)[: min(n, SKIPPED_IDS)].tolist())
        beyond += max(0, n - SKIPPED_IDS)
    return len(ids) + beyond


def nested(counts: Mapping[str, int]) -> dict[str, Any]:
    """Turns dotted counter names into nested dicts (``{"frames": {"hits": ...}}``), adding caches' hit rates."""
    out: dict[str, Any] = {}
    for name, value in counts.items():
        group, _, leaf = name.rpartition(".")
        (out.setdefault(group, {}) if group else out)[leaf] = value
    for cache in ("frames", "decoders", "cache"):
        c = out.get(cache)
        if c is not None:
            looked = c["hits"] + c["misses"]
            c["hit_rate"] = c["hits"] / looked if looked else 0.0
    return out


class DecodePublisher:
    """Copies a reader's decode counters (frame pool, decoders, batch slots) into its row, at most every
    ``PUBLISH_EVERY_S`` (:meth:`maybe`, called per item) or at once (:meth:`now`: at the end, or on a read)."""

    def __init__(self, row: ReaderRow | None, memory: Admission, ring: SlotRing | None) -> None:
        self.row, self.memory, self.frames, self.ring = row, memory, memory.pool, ring
        self._last = 0.0

    def maybe(self) -> None:
        now = time.monotonic()
        if now - self._last >= PUBLISH_EVERY_S:
            self._last = now
            self.now()

    def now(self) -> None:
        if self.row is None:
            return
        counts = {
            f"{cache}.{name}": getattr(st, name) for cache, st in self.frames.stats().items() for name in _CACHE
        }
        counts |= {
            "decoded_frames": self.frames.decoded_frames,
            "delivered_frames": self.frames.delivered_frames,
            "decode_calls": self.frames.decode_calls,
            "decode_passes": self.frames.decode_passes,
            "memory.planned_peak": self.memory.peak,
            "memory.rss_peak": rss_peak_bytes(),
        }
        if self.ring is not None:
            counts |= {"batch_slots.created": self.ring.created, "batch_slots.reused": self.ring.reused}
        self.row.set(counts)
