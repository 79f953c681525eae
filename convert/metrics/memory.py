"""Handing freed memory back to the system between shards, so RSS follows what the converter holds.

Arrow's allocator (jemalloc or mimalloc) and glibc's malloc both keep freed pages for reuse; after a shard the
rows, footers and samples it needed are garbage, and without a release the process's RSS stays at its
high-water mark for the rest of the run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import pyarrow as pa


def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim  # glibc only; musl and macOS have none
        return trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_trim()


def release_free_memory() -> None:
    """Returns the free pages of Arrow's memory pool and of the C heap to the system."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
