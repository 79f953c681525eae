"""Deterministic tar writing: fixed metadata on every member and a sha256 computed while writing.

Same members in the same order give the same bytes on any machine: mtime 0, uid/gid 0, empty owner names,
mode 0o644, POSIX pax format (long names get a pax header, deterministically). Webdataset groups members by
the key before the first dot, so samples must be written contiguously; :class:`ShardWriter` enforces it.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Sequence
from typing import Protocol

from lerobot_wds.convert.errors import TarWriteError
from lerobot_wds.convert.metrics import StageTimes


class Writable(Protocol):
    """Where a shard's bytes go: a file opened for binary writing, or staging's guarded file."""

    def write(self, data: bytes, /) -> int: ...


class _HashingWriter(io.RawIOBase):
    """A write-only file object that hashes and counts what it passes to the underlying file."""

    def __init__(self, raw: Writable, times: StageTimes) -> None:
        self._raw = raw
        self._times = times
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self._raw.write(b)
        with self._times.timed("hashing"):
            self.sha256.update(b)
        self.bytes += len(b)
        return len(b)


def tar_info(name: str, size: int) -> tarfile.TarInfo:
    """Returns the TarInfo every member gets: only name and size vary."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _padding(size: int, unit: int) -> bytes:
    return bytes(-size % unit)


class ShardWriter:
    """Writes samples (ordered ``(name, data)`` members) into one tar stream and hashes it on the way.

    Usage::

        with open(path, "wb") as f:
            w = ShardWriter(f, name="shards/shard-000000.tar")
            w.add_sample("episode_000000", [("episode_000000.json", b"..."), ...])
            size, sha = w.close()
    """

    def __init__(self, fileobj: Writable, *, name: str, times: StageTimes | None = None) -> None:
        self.name = name
        self._times = times or StageTimes()
        # headers and padding are written by hand (as tarfile would): strictly sequential, and an aborted
        # shard leaves no tarfile object behind that tries to finish the archive when collected
        self._out = _HashingWriter(fileobj, self._times)
        self._keys: set[str] = set()
        self.samples = 0
        self.extents: list[tuple[int, int, str]] = []  # per sample: (offset, length, sha256 of those bytes)
        self._closed = False

    def add_sample(self, key: str, members: Sequence[tuple[str, bytes]]) -> None:
        """Appends one sample; every member name must be ``<key>.<suffix>`` and the key new in this shard."""
        if self._closed:
            raise TarWriteError(f"{self.name}: add_sample({key!r}) after close()")
        if key in self._keys:
            raise TarWriteError(f"{self.name}: sample key {key!r} written twice")
        if "." in key or not key:
            raise TarWriteError(f"{self.name}: sample key {key!r} must be non-empty and contain no dot")
        seen: set[str] = set()
        for member, _ in members:
            if not member.startswith(key + ".") or member == key + ".":
                raise TarWriteError(f"{self.name}: member {member!r} does not start with '{key}.<suffix>'")
            if member in seen:
                raise TarWriteError(f"{self.name}: member {member!r} appears twice in sample {key!r}")
            seen.add(member)
        with self._times.timed("tar", excluding="hashing"):
            self._write_sample(key, members)

    def _write_sample(self, key: str, members: Sequence[tuple[str, bytes]]) -> None:
        self._keys.add(key)
        start, digest = self._out.bytes, hashlib.sha256()
        for member, data in members:
            for chunk in (
                tar_info(member, len(data)).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"),
                data,
                _padding(len(data), tarfile.BLOCKSIZE),
            ):
                self._out.write(chunk)
                with self._times.timed("hashing"):
                    digest.update(chunk)
        self.extents.append((start, self._out.bytes - start, digest.hexdigest()))
        self.samples += 1

    def close(self) -> tuple[int, str]:
        """Finishes the archive (end blocks, record padding); returns ``(bytes, sha256 hex)``."""
        if not self._closed:
            self._out.write(bytes(2 * tarfile.BLOCKSIZE))  # end-of-archive marker
            self._out.write(_padding(self._out.bytes, tarfile.RECORDSIZE))
            self._closed = True
        return self._out.bytes, self._out.sha256.hexdigest()
