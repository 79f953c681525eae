"""The node-local cache: episode bytes on local disk, shared by every process of the node, under a hard bound.

An entry is one episode's bytes (its tar members), named by the manifest's sha256 of them, so entries are
checked on the way in (the bytes must hash to their name), shared across roots holding the same episode, and
never stale. Layout under ``cache_dir``::

    lock            flock'ed while the accounting changes (every process of the node)
    size            bytes of the entries plus the reservations of entries being written (decimal)
    entries/<sha>   complete entries, the only names a reader opens
    tmp/<sha>.<pid>.<bytes>   entries being written, flock'ed by their writer

One owner of the bound: :meth:`NodeCache.put` reserves an entry's bytes under the lock before writing them,
evicting first, so entries plus entries being written never exceed ``limit``. A write goes to ``tmp/`` (fsync)
and is renamed into ``entries/``: a partial file never carries a final name. A process killed mid-write
(``kill -9``) leaves an unlocked temp file; every process opening the cache recounts ``size`` from the disk
under the lock and deletes temp files nobody holds, so a restart reuses every complete entry and nothing else.
Two processes writing the same episode: the second finds the entry (or its live temp file) and writes nothing,
so there is one copy per entry.

Eviction is least recently used outside the working set: a hit or write stamps its entry's mtime; when a
reservation does not fit, the entries are sorted by mtime once and the oldest deleted until the new entry fits
under ``LOW_WATER`` of the limit (one scan of the directory pays for many later inserts), skipping the entries
of ``keep`` (the episodes the node reads, its share: see :mod:`nodes`). When the rest does not make room, the
new entry is not stored and streams: a share larger than the cache keeps the part that is cached, so the hit
rate of later epochs is the fraction of the share that fits instead of the near-zero of LRU over a cyclic scan.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lerobot_wds.reader.errors import OptionError

LOW_WATER = 0.9  # an eviction frees space until entries fit under this fraction of the limit


@dataclass(frozen=True)
class CacheConfig:
    """Where the node-local cache lives, its hard bound in bytes and the entries eviction keeps.

    Attributes:
        keep: sha256 digests of the episodes the node reads (its share), never evicted for another entry.
    """

    directory: str
    limit: int
    keep: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.directory:
            raise OptionError("cache_dir='' names no directory; give a local directory or None (no cache)")
        if self.limit < 1:
            raise OptionError(f"cache_limit={self.limit}; expected a number of bytes >= 1")


class NodeCache:
    """One process's handle on a node-local cache directory (open it with :func:`open_cache`)."""

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self.root = Path(config.directory)
        self.entries, self.tmp = self.root / "entries", self.root / "tmp"
        try:
            self.entries.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(exist_ok=True)
        except OSError as e:
            raise OptionError(f"cache_dir={config.directory!r}: cannot create the cache there ({e})") from e
        self._lock_path = self.root / "lock"
        self.evictions = 0  # entries this process evicted
        with self._locked():
            self._write_size(self._recount())

    # --- accounting, under the lock ------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def _read_size(self) -> int:
        try:
            return int((self.root / "size").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return self._recount()

    def _write_size(self, n: int) -> None:
        part = self.root / f"size.{os.getpid()}"
        part.write_text(str(n))
        os.replace(part, self.root / "size")

    def _recount(self) -> int:
        """Entries' bytes plus live writers' reservations; deletes temp files no live writer holds."""
        total = sum(e.stat().st_size for e in os.scandir(self.entries) if e.is_file())
        for t in os.scandir(self.tmp):
            if _held(t.path):
                total += int(t.name.rsplit(".", 1)[-1])
            else:
                _unlink(t.path)
        return total

    def _evict(self, need: int, size: int) -> int:
        """Deletes least recently used entries until ``need`` more bytes fit under the low-water mark."""
        low = int(self.config.limit * LOW_WATER)
        goal = low - need if need <= low else self.config.limit - need
        entries = sorted(os.scandir(self.entries), key=lambda e: e.stat().st_mtime_ns)
        for e in entries:
            if e.name in self.config.keep:
                continue
            if size <= goal:
                break
            n = e.stat().st_size
            if _unlink(e.path):
                size -= n
                self.evictions += 1
        return size

    # --- entries -------------------------------------------------------------------------------------------------
    def get(self, digest: str) -> bytes | None:
        """The entry's bytes (touched as recently used), or None when it is not (or no longer) cached."""
        path = self.entries / digest
        try:
            with open(path, "rb") as f:
                data = f.read()
            _touch(path)
        except FileNotFoundError:
            return None
        return data

    def contains(self, digest: str) -> bool:
        return (self.entries / digest).is_file()

    def discard(self, digest: str) -> None:
        """Deletes an entry whose bytes no longer match its name (the disk changed under it)."""
        with self._locked():
            path = self.entries / digest
            try:
                n = path.stat().st_size
            except FileNotFoundError:
                return
            if _unlink(str(path)):
                self._write_size(max(0, self._read_size() - n))

    def put(self, digest: str, data: bytes | memoryview) -> bool:
        """Stores ``data`` as entry ``digest`` unless it is cached or being written, or larger than the bound.

        Returns whether this process wrote it; bytes that do not hash to ``digest`` are never stored.
        """
        n = len(data)
        if n > self.config.limit or self.contains(digest):
            return False
        if hashlib.sha256(data).hexdigest() != digest:
            return False
        tmp = self.tmp / f"{digest}.{os.getpid()}.{n}"
        with self._locked():
            # a writer renames its entry from tmp/ to entries/ under the lock: it is in exactly one of them
            if any(t.name.startswith(f"{digest}.") for t in os.scandir(self.tmp)) or self.contains(digest):
                return False
            size = self._read_size()
            if size + n > self.config.limit:
                size = self._evict(n, size)
            if size + n > self.config.limit:
                size = self._recount()  # reservations of writers killed since they reserved
                if size + n > self.config.limit:
                    self._write_size(size)
                    return False  # the rest is the kept share or being written by live writers
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # live: a recount keeps its reservation
            self._write_size(size + n)
        try:
            with os.fdopen(fd, "wb", closefd=False) as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with self._locked():  # a count under the lock (a recount, disk_bytes) sees it in one folder, once
                os.rename(tmp, self.entries / digest)
            _touch(self.entries / digest)
        except BaseException:
            _unlink(str(tmp))
            with self._locked():
                self._write_size(max(0, self._read_size() - n))
            raise
        finally:
            os.close(fd)
        return True

    def size(self) -> int:
        """Bytes of the entries and of the entries being written (what the bound holds)."""
        with self._locked():
            return self._read_size()


def _touch(path: Path) -> None:
    """Stamps an entry as used now (nanoseconds: the file system's own mtimes can tie within a tick)."""
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now))
    except FileNotFoundError:
        pass  # evicted meanwhile


def _held(path: str) -> bool:
    """Whether a live process holds the flock of ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def disk_bytes(directory: str | Path) -> int:
    """Bytes of a cache's entries and temp files now, sampled under its lock: the count cannot change meanwhile
    (writers reserve, rename and evict under the lock; only a temp file's own bytes grow up to its reservation)."""
    root = Path(directory)
    fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        total = 0
        for folder in ("entries", "tmp"):
            for entry in list(os.scandir(root / folder)) if (root / folder).is_dir() else []:
                try:
                    total += entry.stat().st_size
                except FileNotFoundError:
                    continue
        return total
    finally:
        os.close(fd)


_OPEN: dict[tuple[int, str, int], NodeCache] = {}


def open_cache(config: CacheConfig) -> NodeCache:
    """This process's handle on the cache (one per process: flocks belong to an open file, which fork shares),
    keeping ``config.keep``."""
    key = (os.getpid(), config.directory, config.limit)
    cache = _OPEN.get(key)
    if cache is None:
        cache = _OPEN[key] = NodeCache(config)
    cache.config = config
    return cache
