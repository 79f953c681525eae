"""Checks of the reader's user-facing options, at the boundary (constructor, ``set_epoch``,
``samples_per_rank``): a wrong type or value is an :class:`OptionError` naming the keyword, the value and what
is accepted, before any stage sees it (``2.5`` is no batch size, ``"12"`` no episode list)."""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lerobot_wds.core.format import ShardInfo
from lerobot_wds.reader.errors import OptionError, UnknownEpisodeError
from lerobot_wds.reader.fetching.cache import CacheConfig


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, else :class:`OptionError` naming ``name``, the value and its type."""
    if not is_int(value) or value < minimum:
        raise OptionError(f"{name}={value!r} ({type(value).__name__}); expected an integer >= {minimum}")
    return int(value)


def check_optional_int(name: str, value: Any, minimum: int) -> int | None:
    """:func:`check_int` that also accepts None."""
    if value is None:
        return None
    if not is_int(value) or value < minimum:
        raise OptionError(f"{name}={value!r} ({type(value).__name__}); expected an integer >= {minimum} or None")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool, else :class:`OptionError`."""
    if not isinstance(value, bool):
        raise OptionError(f"{name}={value!r} ({type(value).__name__}); expected True or False")
    return value


def check_real(name: str, value: Any, minimum: float) -> float:
    """``value`` as a float >= ``minimum`` (ints accepted, bools and strings not)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not float(value) >= minimum:
        raise OptionError(f"{name}={value!r} ({type(value).__name__}); expected a number >= {minimum}")
    return float(value)


def check_delta_timestamps(value: Any) -> dict[str, list[float]] | None:
    """``{feature key: [seconds, ...]}`` with real numbers, or None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise OptionError(
            f"delta_timestamps={value!r} ({type(value).__name__}); expected a dict of feature key -> list of "
            "seconds, e.g. {'observation.state': [-0.1, 0.0]}"
        )
    out: dict[str, list[float]] = {}
    for key, deltas in value.items():
        if (
            not isinstance(deltas, Sequence)
            or isinstance(deltas, (str, bytes))
            or not all(isinstance(d, numbers.Real) and not isinstance(d, bool) for d in deltas)
        ):
            raise OptionError(
                f"delta_timestamps[{key!r}]={deltas!r}; expected a list of seconds, e.g. [-0.1, 0.0] "
                "(a single delta is a list of one)"
            )
        out[str(key)] = [float(d) for d in deltas]
    return out


def check_episodes(value: Any, shards: Sequence[ShardInfo]) -> list[int] | None:
    """``episodes=`` as a list of episode indices this root holds, or None (every episode).

    Raises:
        OptionError: not a list of integers, or empty.
        UnknownEpisodeError: an index the root does not hold, naming it and the range the root holds.
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise OptionError(
            f"episodes={value!r} ({type(value).__name__}); expected a list of episode indices, e.g. [0, 3, 7]"
        )
    items = list(value)
    wrong = [e for e in items if not is_int(e)]
    if wrong:
        raise OptionError(f"episodes={items!r}: {wrong[0]!r} is not an episode index; expected integers")
    if not items:
        raise OptionError("episodes=[] selects no episode; give at least one index, or None for every episode")
    known = {e for s in shards for e in s.episodes}
    unknown = sorted({int(e) for e in items} - known)
    if unknown:
        lo, hi = (min(known), max(known)) if known else (0, -1)
        gaps = "" if len(known) == hi - lo + 1 else f" ({hi - lo + 1 - len(known)} indices in that range absent)"
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise UnknownEpisodeError(
            f"episodes: episode {unknown[0]}{more} is not in this root; it holds {len(known)} episodes, "
            f"indices {lo}..{hi}{gaps}"
        )
    return [int(e) for e in items]


def check_cache(cache_dir: Any, cache_limit: Any) -> CacheConfig | None:
    """``cache_dir=`` and ``cache_limit=`` as the node-local cache's configuration, or None (no cache).

    Raises:
        OptionError: a directory that is not a path, a limit that is no positive integer, or one without the other.
    """
    if cache_dir is None and cache_limit is None:
        return None
    if cache_dir is None or cache_limit is None:
        raise OptionError(
            f"cache_dir={cache_dir!r}, cache_limit={cache_limit!r}: the node-local cache needs both a directory "
            "and a bound in bytes (e.g. cache_limit=500 * 2**30), or neither"
        )
    if not isinstance(cache_dir, (str, os.PathLike)) or not str(cache_dir):
        raise OptionError(f"cache_dir={cache_dir!r} ({type(cache_dir).__name__}); expected a local directory path")
    return CacheConfig(str(cache_dir), check_int("cache_limit", cache_limit, 1))
