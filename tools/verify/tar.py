"""Streaming a shard for ``verify``: hash and count its bytes, list its tar members, group them into samples.

A shard is read once, front to back, through :class:`HashingReader`, so its sha256 and size come for free
while the tar is parsed and only one sample's members are in memory at a time. Grouping follows webdataset:
a sample is a run of consecutive members sharing the key before the first dot of their name.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

_CHUNK = 1 << 20


class HashingReader:
    """A read-only file object that hashes and counts every byte read from the underlying file.

    With ``extents`` ((offset, length) pairs, sorted: the manifest's episode extents) it also hashes each
    extent's bytes on the way; ``extent_digests`` then holds their sha256 (None for an extent not fully read).
    """

    def __init__(self, raw: BinaryIO, extents: Sequence[tuple[int, int]] = ()) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self._extents = list(extents)
        self._hashers = [hashlib.sha256() for _ in self._extents]
        self._filled = [0] * len(self._extents)
        self._next = 0  # first extent not yet complete

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hash_extents(self.bytes, data)
        self.sha256.update(data)
        self.bytes += len(data)
        return data

    def _hash_extents(self, pos: int, data: bytes) -> None:
        end = pos + len(data)
        i = self._next
        while i < len(self._extents) and self._extents[i][0] < end:
            off, n = self._extents[i]
            lo, hi = max(off, pos), min(off + n, end)
            if lo < hi:
                self._hashers[i].update(data[lo - pos : hi - pos])
                self._filled[i] += hi - lo
            if off + n <= end:
                self._next = i + 1
            i += 1

    @property
    def extent_digests(self) -> list[str | None]:
        return [
            h.hexdigest() if f == n else None
            for h, f, (_, n) in zip(self._hashers, self._filled, self._extents, strict=True)
        ]

    def drain(self) -> None:
        """Reads (and hashes) whatever follows the tar's end blocks, up to the end of the file."""
        while self.read(_CHUNK):
            pass


@dataclass(frozen=True)
class Member:
    """One tar entry: its name, its data (empty unless a regular file) and whether it is a regular file."""

    name: str
    data: bytes
    regular: bool

    @property
    def key(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def suffix(self) -> str:
        """The part after the first dot, or "" when the name has no dot."""
        return self.name.split(".", 1)[1] if "." in self.name else ""


@dataclass(frozen=True)
class Sample:
    """A run of consecutive members with one key; ``position`` counts samples from 0 within the shard."""

    key: str
    members: tuple[Member, ...]
    position: int


def iter_members(fileobj: HashingReader) -> Iterator[Member]:
    """Yields the tar's members in order; raises ``tarfile.TarError`` when the archive is corrupt or truncated."""
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:  # type: ignore[call-overload]  # any .read() object  # stream mode: sequential reads only, no seeks
        for info in tar:
            if not info.isfile():
                yield Member(info.name, b"", regular=False)
                continue
            f = tar.extractfile(info)
            data = f.read() if f is not None else b""
            if len(data) != info.size:
                raise tarfile.ReadError(
                    f"member {info.name!r}: {len(data)} bytes of data, header says {info.size}"
                )
            yield Member(info.name, data, regular=True)


def group_samples(members: Iterable[Member]) -> Iterator[Sample]:
    """Groups consecutive members by key, like webdataset does (a key that comes back starts a new sample)."""
    current: list[Member] = []
    position = 0
    for m in members:
        if current and m.key != current[0].key:
            yield Sample(current[0].key, tuple(current), position)
            position += 1
            current = []
        current.append(m)
    if current:
        yield Sample(current[0].key, tuple(current), position)
