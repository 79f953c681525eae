"""The package's one LRU: :class:`LruCache`, bounded by cost, with named groups and hit / miss / eviction
counters, and :class:`LoadingLRU`, a thread-safe LruCache that loads each missing key once.

:class:`LruCache` is used by the reader's ``FramePool`` for torchcodec decoders (cost 1 each) and decoded
frames (cost = bytes), and by ``verify --decode`` for its source decoders. Groups let a finished episode drop
all its entries at once; those drops are not counted as evictions (they are not memory pressure).

:class:`LoadingLRU` is used by the converter for parsed MP4 indexes (bounded by their bytes) and parquet footers:
several workers asking for the same file at the same time wait for one load instead of parsing it in parallel,
and the bound keeps memory independent of how many files a dataset has.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of a cache's counters."""

    hits: int
    misses: int
    evictions: int
    size: int
    cost: int
    capacity: int
    peak_cost: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "size": self.size,
            "cost": self.cost,
            "capacity": self.capacity,
            "peak_cost": self.peak_cost,
            "hit_rate": self.hit_rate,
        }


class LruCache(Generic[V]):
    """Least-recently-used cache bounded by the summed ``cost`` of its values.

    Keys are ``(group, item)`` tuples. A single value costlier than the capacity is still kept (alone) so a
    caller always gets back what it just put; the cache then evicts it first. ``on_evict(key, value)``, if
    given, is called for each entry evicted for capacity (not for ``discard``, ``drop_group`` or ``clear``).
    """

    def __init__(
        self,
        capacity: int,
        cost: Callable[[V], int] = lambda _: 1,
        on_evict: Callable[[tuple[Hashable, Hashable], V], None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"LruCache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._cost_fn = cost
        self._on_evict = on_evict
        self._data: OrderedDict[tuple[Hashable, Hashable], tuple[V, int]] = OrderedDict()
        self._groups: dict[Hashable, set[tuple[Hashable, Hashable]]] = {}
        self._cost = self.peak_cost = 0
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: tuple[Hashable, Hashable]) -> bool:
        return key in self._data

    def get(self, key: tuple[Hashable, Hashable]) -> V | None:
        """Returns the value and marks it recently used (a hit), or None (a miss)."""
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._data.move_to_end(key)
        return entry[0]

    def peek(self, key: tuple[Hashable, Hashable]) -> V | None:
        """Returns the value or None, without counting a hit or a miss and without marking it used."""
        entry = self._data.get(key)
        return None if entry is None else entry[0]

    def values(self) -> Iterator[V]:
        """The values, least recently used first."""
        return (value for value, _ in self._data.values())

    def put(self, key: tuple[Hashable, Hashable], value: V) -> None:
        """Inserts or replaces a value, then evicts least recently used entries until within capacity."""
        self._remove(key)
        cost = self._cost_fn(value)
        self._data[key] = (value, cost)
        self._groups.setdefault(key[0], set()).add(key)
        self._cost += cost
        self.peak_cost = max(self.peak_cost, self._cost)
        while self._cost > self.capacity and len(self._data) > 1:
            old = next(iter(self._data))
            old_value = self._data[old][0]
            self._remove(old)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(old, old_value)

    def discard(self, key: tuple[Hashable, Hashable]) -> None:
        """Removes one entry if present (not an eviction: the caller is done with it)."""
        self._remove(key)

    def drop_group(self, group: Hashable) -> int:
        """Removes every entry of ``group``; returns how many were removed."""
        keys = self._groups.pop(group, set())
        for key in list(keys):
            value_cost = self._data.pop(key, None)
            if value_cost is not None:
                self._cost -= value_cost[1]
        return len(keys)

    def clear(self) -> None:
        """Removes every entry (not evictions); the counters are kept."""
        self._data.clear()
        self._groups.clear()
        self._cost = 0

    def _remove(self, key: tuple[Hashable, Hashable]) -> None:
        entry = self._data.pop(key, None)
        if entry is None:
            return
        self._cost -= entry[1]
        group = self._groups.get(key[0])
        if group is not None:
            group.discard(key)
            if not group:
                del self._groups[key[0]]

    def stats(self) -> CacheStats:
        return CacheStats(
            self.hits, self.misses, self.evictions, len(self._data), self._cost, self.capacity, self.peak_cost
        )


class LoadingLRU(Generic[K, V]):
    """``get(key)`` returns the cached value or loads it with ``loader(key)``; keeps ``maxsize`` entries, or
    values of at most ``maxsize`` summed ``cost`` when a cost is given (a value loading costs 1 until loaded).

    Thread-safe: an :class:`LruCache` of :class:`~concurrent.futures.Future` under a lock. The first caller
    of a missing key loads it outside the lock; concurrent callers of that key wait on its Future. A failed
    load is not cached (the next caller retries it); every waiting caller gets its exception.
    """

    def __init__(self, maxsize: int, loader: Callable[[K], V], cost: Callable[[V], int] | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._loader = loader
        self._value_cost = cost
        self._lock = threading.Lock()
        self._cache: LruCache[Future[V]] = LruCache(maxsize, cost=self._entry_cost)

    def _entry_cost(self, fut: Future[V]) -> int:
        if self._value_cost is None or not fut.done() or fut.exception() is not None:
            return 1
        return self._value_cost(fut.result())

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    def get(self, key: K) -> V:
        ck = (None, key)
        with self._lock:
            fut = self._cache.get(ck)
            owner = fut is None
            if fut is None:
                fut = Future()
                self._cache.put(ck, fut)
        if owner:
            try:
                fut.set_result(self._loader(key))
                if self._value_cost is not None:
                    with self._lock:  # weigh it now that it is loaded (evicting others to fit)
                        if self._cache.peek(ck) is fut:
                            self._cache.put(ck, fut)
            except BaseException as e:
                with self._lock:
                    # a failed load is not cached: the next caller retries it
                    if self._cache.peek(ck) is fut:
                        self._cache.discard(ck)
                fut.set_exception(e)
        return fut.result()

    def stats(self) -> CacheStats:
        with self._lock:
            return self._cache.stats()

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
