"""Keeps a DataLoader worker's freed frame buffers in its heap instead of returning them to the kernel.

torchcodec returns every decoded block in a new tensor (64 frames of 240x320 RGB are 14.7 MB). glibc serves
an allocation that size with ``mmap`` or trims it off the heap top when it is freed, so each block is paged
in again and zeroed by the kernel: about half a million page faults per 12,000 frames. Raising glibc's
``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` in the worker lets the next block reuse the memory of the last
one (its effect on frames/s: ``docs/design.md``).

The cost is that a worker's resident memory stays at its high-water mark, which the frame budget
(``DecodeConfig.frame_cache_bytes``) bounds anyway. Applied only inside DataLoader worker processes (the
main process is the user's), only on glibc, once per process; ``AssembleConfig(tune_worker_malloc=False)``
turns it off.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 * 1024 * 1024  # above any decoded block of a sane frame size and block length
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024

_applied: bool | None = None


def tune_worker_malloc() -> bool:
    """Applies the thresholds once in this process; returns whether they are in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError as e:
        log.debug("glibc not loadable (%s); keeping default malloc thresholds", e)
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1 and ok
    if not ok:
        log.debug("glibc refused the malloc thresholds; keeping its defaults")
    _applied = ok
    return ok
