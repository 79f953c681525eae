"""Byte-range access to source files for the remux core: ``read(offset, length) -> bytes`` callables.

Local paths use ``os.pread`` on one descriptor (thread-safe, no seek state); any other fsspec
filesystem uses ``cat_file(path, start, end)``, one ranged request per call (retried on transient
errors), which is also thread-safe. Short reads are reported by the callers as :class:`Mp4Error`.
"""

from __future__ import annotations

import os

import fsspec

from lerobot_wds.convert.mp4.boxes import ReadFn
from lerobot_wds.core.retry import RetryPolicy, read_with_retries, with_retries


def file_reader(
    fs: fsspec.AbstractFileSystem, path: str, *, attempts: int = 5, backoff_s: float = 0.5
) -> tuple[ReadFn, int]:
    """Returns a thread-safe ``read(offset, length)`` over ``path`` on ``fs`` and the file's size.

    Remote reads retry transient errors ``attempts`` times with exponential backoff (the one retry policy,
    :mod:`lerobot_wds.core.retry`).
    """
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols or "local" in protocols:
        reader = LocalReader(path)
        return reader, reader.size
    policy = RetryPolicy(attempts=attempts, backoff_s=backoff_s)
    size = read_with_retries(lambda: int(fs.size(path)), what=f"size of {path}", policy=policy)

    def read_remote(offset: int, length: int) -> bytes:
        return with_retries(
            lambda: fs.cat_file(path, start=offset, end=offset + length),
            what=f"read {path} bytes {offset}..{offset + length}",
            policy=policy,
        )

    return read_remote, size


class LocalReader:
    """``read(offset, length)`` over a local file via ``os.pread``; closes its descriptor when collected."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def __call__(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


def bytes_reader(data: bytes) -> tuple[ReadFn, int]:
    """Returns a ``read(offset, length)`` over an in-memory buffer and its size."""
    view = memoryview(data)

    def read(offset: int, length: int) -> bytes:
        return bytes(view[offset : offset + length])

    return read, len(data)
