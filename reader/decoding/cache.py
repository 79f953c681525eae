"""A bounded LRU cache with cost accounting, named groups and hit / miss / eviction counters.

Used by :class:`frames.FramePool` for torchcodec decoders (cost 1 each) and decoded frames (cost =
bytes). Groups let a finished episode
drop all its entries at once; those drops are not counted as evictions (they are not memory pressure).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

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
    caller always gets back what it just put; the cache then evicts it first.
    """

    def __init__(self, capacity: int, cost: Callable[[V], int] = lambda _: 1) -> None:
        if capacity < 1:
            raise ValueError(f"LruCache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._cost_fn = cost
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
            self._remove(old)
            self.evictions += 1

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
