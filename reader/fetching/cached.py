"""A planned read served through the node-local cache (:mod:`cache`): cached episodes from disk, the rest remote.

The read's episodes found in the cache (and matching the manifest's sha256) are hits; each run of consecutive
missing episodes is one ranged GET (``fetch``, the reader's fetch with its retries and checks), and every
episode fetched whole and intact is stored in the cache behind the read (in the read-ahead thread, while the
consumer works on earlier reads). So a cache holding part of a reader's episodes saves exactly that part.
The bytes are handed on as one range read of the episodes' extents, as any ranged read is. A cache that cannot
be read or written (a full or failing disk) never fails a read: the episode is a miss, logged once per process.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lerobot_wds.core.format import EpisodeExtent
from lerobot_wds.reader.errors import OptionError
from lerobot_wds.reader.fetching.cache import CacheConfig, NodeCache, open_cache
from lerobot_wds.reader.planning.reads import Read

log = logging.getLogger(__name__)
_WARNED: list[str] = []  # cache failures already logged in this process


@dataclass
class CacheTally:
    """What one read did with the cache: episodes hit and missed, bytes read from disk, entries evicted."""

    hits: int = 0
    misses: int = 0
    cached_bytes: int = 0
    evictions: int = 0


def _warn(what: str, e: Exception) -> None:
    if what not in _WARNED:
        _WARNED.append(what)
        log.warning("node-local cache: %s failed (%s); the episode is read from the root instead", what, e)


def open_or_warn(config: CacheConfig) -> NodeCache | None:
    """This process's handle on the cache, or None (logged once) when its directory cannot be used."""
    try:
        return open_cache(config)
    except (OptionError, OSError) as e:
        _warn("opening the cache", e)
        return None


def _get(cache: NodeCache, digest: str) -> bytes | None:
    try:
        return cache.get(digest)
    except OSError as e:
        _warn("reading an entry", e)
        return None


def _put(cache: NodeCache, digest: str, data: memoryview) -> None:
    try:
        cache.put(digest, data)
    except OSError as e:
        _warn("storing an entry", e)


def _runs(missing: Sequence[EpisodeExtent]) -> list[list[EpisodeExtent]]:
    """Groups missing extents into runs that are adjacent in the shard (one GET each)."""
    runs: list[list[EpisodeExtent]] = []
    for e in missing:
        if runs and runs[-1][-1].offset + runs[-1][-1].length == e.offset:
            runs[-1].append(e)
        else:
            runs.append([e])
    return runs


def fetch_through_cache(
    read: Read,
    cache: NodeCache,
    fetch: Callable[[Read], tuple[bytes, dict[int, str]]],
    *,
    verify: bool,
    tally: CacheTally,
) -> tuple[Read, bytes, dict[int, str]]:
    """Serves ``read`` from the cache and ``fetch`` (a read -> its bytes and integrity failures).

    Returns the range read of the episodes' extents, its bytes (gaps between extents, if any, zero) and the
    failures (``{episode: message}``) of what was fetched.
    """
    start = read.extents[0].offset
    end = read.extents[-1].offset + read.extents[-1].length
    out = bytearray(end - start)
    missing: list[EpisodeExtent] = []
    for ext in read.extents:
        data = _get(cache, ext.sha256)
        if data is not None and verify and hashlib.sha256(data).hexdigest() != ext.sha256:
            try:
                cache.discard(ext.sha256)
            except OSError as err:
                _warn("deleting a damaged entry", err)
            data = None
        if data is None or len(data) != ext.length:
            missing.append(ext)
            continue
        out[ext.offset - start : ext.offset - start + ext.length] = data
        tally.hits += 1
        tally.cached_bytes += len(data)
    failures: dict[int, str] = {}
    evicted = cache.evictions
    for run in _runs(missing):
        lo, hi = run[0].offset, run[-1].offset + run[-1].length
        sub = Read(read.url, read.shard, lo, hi, tuple(e.episode for e in run), tuple(run))
        data, bad = fetch(sub)
        tally.misses += len(run)
        failures |= bad
        if not data:  # failed as a whole (on_error="skip"): every episode of it is in ``bad``
            continue
        out[lo - start : hi - start] = data
        view = memoryview(data)
        for e in run:
            if e.episode not in bad:
                _put(cache, e.sha256, view[e.offset - lo : e.offset - lo + e.length])
    tally.evictions += cache.evictions - evicted
    ranged = Read(read.url, read.shard, start, end, read.episodes, read.extents)
    return ranged, bytes(out), failures
