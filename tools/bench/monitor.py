"""Samples the memory and read I/O of this process and its DataLoader workers on a background thread.

Peak RSS is the largest *sum* of the resident set sizes of the main process and all its descendants seen at
one sample (shared pages are counted once per process, so this over-counts pages shared with workers; it is
the number a batch scheduler's RSS limit sees). Bytes read are the growth of each process's ``read_chars``
(bytes returned by read-like syscalls, page cache included) summed over every process ever seen; a worker's
last value is the one sampled before it exited, so reads in its last interval can be missed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TypeVar

import psutil

from lerobot_wds.reader.fetching.cache import disk_bytes

_S = TypeVar("_S", bound="PeriodicSampler")


class PeriodicSampler:
    """Context manager calling :meth:`sample` on entry, every ``interval_s`` seconds on a thread while entered,
    and once more on exit (after :meth:`before_last`)."""

    thread_name = "bench-sampler"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        raise NotImplementedError

    def before_last(self) -> None:
        """Called before the last sample, on exit."""

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self: _S) -> _S:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.before_last()
        self.sample()


class ProcessMonitor(PeriodicSampler):
    """Context manager sampling RSS and read bytes of the process tree every ``interval_s`` seconds.

    Listing descendants scans every process of the machine (``/proc/*/stat``), which cost about a tenth of a
    core at 20 samples/s: the list is refreshed every ``refresh_s`` seconds only, and every sample reads the
    known processes (new workers are picked up at the next refresh).
    """

    def __init__(self, interval_s: float = 0.05, refresh_s: float = 0.5) -> None:
        if interval_s <= 0 or refresh_s <= 0:
            raise ValueError(f"interval_s and refresh_s must be > 0, got {interval_s}, {refresh_s}")
        super().__init__(interval_s)
        self.refresh_s = refresh_s
        self.peak_rss_bytes = 0
        self.peak_child_rss_bytes = 0  # the largest single descendant (a DataLoader worker)
        self._root = psutil.Process()
        self._children: list[psutil.Process] = []
        self._listed_at = float("-inf")
        self._read_start: dict[int, int] = {}
        self._read_last: dict[int, int] = {}
        self._lock = threading.Lock()

    def sample(self) -> None:
        """Takes one sample now (also called by the thread)."""
        now = time.monotonic()
        if now - self._listed_at >= self.refresh_s:
            try:
                self._children = self._root.children(recursive=True)
            except psutil.Error:
                pass
            self._listed_at = now
        procs = [self._root, *self._children]
        rss = child = 0
        for p in procs:
            try:
                with p.oneshot():
                    one = p.memory_info().rss
                    rss += one
                    if p.pid != self._root.pid:
                        child = max(child, one)
                    chars = p.io_counters().read_chars
            except psutil.Error:
                continue  # a worker exited between listing and reading
            with self._lock:
                # processes that appear later (workers) start from zero; the root from its value now
                self._read_start.setdefault(p.pid, chars if p.pid == self._root.pid else 0)
                self._read_last[p.pid] = chars
        with self._lock:
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
            self.peak_child_rss_bytes = max(self.peak_child_rss_bytes, child)

    @property
    def bytes_read(self) -> int:
        """Bytes read by the monitored processes since the monitor started."""
        with self._lock:
            return sum(self._read_last[pid] - start for pid, start in self._read_start.items())

    thread_name = "bench-monitor"

    def before_last(self) -> None:
        self._listed_at = float("-inf")  # the last sample lists the processes again


class DiskSampler(PeriodicSampler):
    """Context manager sampling a node-local cache's bytes on disk (its complete entries and those being written,
    under its lock: :func:`~lerobot_wds.reader.fetching.cache.disk_bytes`) every ``interval_s`` seconds; ``peak``
    is the largest sample.

    Counting means a ``stat`` per entry (about 30 ms of CPU for 5,000 entries), which a warm epoch would pay
    every sample for nothing: a sample is skipped while neither ``entries/`` nor ``tmp/`` changed since the last
    count and nothing was being written (entries are written once, whole, and only renamed in or deleted; a file
    being written lives in ``tmp/``), so the bytes on disk are the last count's.
    """

    thread_name = "bench-disk"

    def __init__(self, directory: Path, interval_s: float = 0.2) -> None:
        super().__init__(interval_s)
        self.directory = directory
        self.peak = 0
        self.counts = 0  # samples that counted the directory (the rest found it unchanged)
        self._seen: tuple[int, int] | None = None  # (entries/, tmp/) mtimes at the last count with tmp/ empty

    def sample(self) -> None:
        entries, tmp = self.directory / "entries", self.directory / "tmp"
        try:
            seen = (entries.stat().st_mtime_ns, tmp.stat().st_mtime_ns)
        except FileNotFoundError:
            return  # not created yet
        if seen == self._seen:
            return
        self.counts += 1
        self.peak = max(self.peak, disk_bytes(self.directory))
        self._seen = seen if not any(tmp.iterdir()) else None
