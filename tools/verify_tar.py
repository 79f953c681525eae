"""Streaming a shard for ``verify``: hash and count its bytes, list its tar members, group them into samples.

A shard is read once, front to back, through :class:`HashingReader`, so its sha256 and size come for free
while the tar is parsed and only one sample's members are in memory at a time. Grouping follows webdataset:
a sample is a run of consecutive members sharing the key before the first dot of their name.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

_CHUNK = 1 << 20


class HashingReader:
    """A read-only file object that hashes and counts every byte read from the underlying file."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.sha256.update(data)
        self.bytes += len(data)
        return data

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
    with tarfile.open(fileobj=fileobj, mode="r|") as tar:  # stream mode: sequential reads only, no seeks
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
