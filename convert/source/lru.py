"""A thread-safe, size-bounded LRU cache that loads each missing key once, even under concurrent requests.

Used for parsed MP4 indexes and parquet footers: several workers asking for the same file at the same time
wait for one load instead of parsing it in parallel, and the bound keeps memory independent of how many
files a dataset has.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LoadingLRU(Generic[K, V]):
    """``get(key)`` returns the cached value or loads it with ``loader(key)``; keeps ``maxsize`` entries."""

    def __init__(self, maxsize: int, loader: Callable[[K], V]) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._loader = loader
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, Future[V]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V:
        with self._lock:
            fut = self._entries.get(key)
            if fut is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                owner = False
            else:
                fut = Future()
                self._entries[key] = fut
                self.misses += 1
                owner = True
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
        if owner:
            try:
                fut.set_result(self._loader(key))
            except BaseException as e:
                with self._lock:
                    # a failed load is not cached: the next caller retries it
                    if self._entries.get(key) is fut:
                        del self._entries[key]
                fut.set_exception(e)
        return fut.result()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
