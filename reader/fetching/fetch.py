"""Transport: the planned reads (:mod:`reads`) fetched in order through fsspec, with retries and read-ahead.

A read is one GET (``fs.cat_file``, with a byte range when it is not a whole shard). A fetch that fails
with a transient error (reset, timeout, 5xx; see :mod:`retry`, the one policy of reader, converter and
verify) or comes back with a size other than planned is retried from scratch with exponential backoff; a
permanent one (missing, 403 / denied unless ``StreamConfig.retry_denied``) fails at once naming the shard.
Nothing of a read is handed on before all of it arrived and was checked against the manifest (per-episode
sha256), so a retry can never duplicate samples. A stalled server raises a
read timeout (``StreamConfig.read_timeout_s``, see :mod:`timeouts`) that is retried like any transient
error. Retries and timeouts are counted in :class:`ReadCounters` (``LeRobotWdsDataset.stats()``). The next
read(s) are fetched and checked in a background thread while the current one is parsed and decoded.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from lerobot_wds.core.errors import ShardReadError, ShortReadError
from lerobot_wds.core.redact import redact_text, redact_url
from lerobot_wds.core.retry import RetryPolicy, describe, is_denied, is_local, is_timeout, with_retries
from lerobot_wds.core.timeouts import DEFAULT_READ_TIMEOUT_S, with_read_timeout
from lerobot_wds.reader.errors import OptionError
from lerobot_wds.reader.fetching.cache import CacheConfig
from lerobot_wds.reader.fetching.cached import CacheTally, fetch_through_cache, open_or_warn
from lerobot_wds.reader.fetching.filesystems import open_fs
from lerobot_wds.reader.fetching.integrity import integrity_failures
from lerobot_wds.reader.planning.reads import Read

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamConfig:
    """How reads are fetched: retries, backoff, read-ahead, integrity, read size and fsspec storage options.

    Attributes:
        retries: retries of a read after a transient error (``retries + 1`` attempts); backoff_s: the bound of
            the first retry's random (full-jitter) delay, doubling on every further one up to the policy's cap.
        read_timeout_s: a socket read (or connect) of an ``http(s)://`` or ``s3://`` read that waits longer
            raises a timeout, which is retried; applied unless ``storage_options`` set their own (aiohttp
            ``client_kwargs["timeout"]``, s3fs ``config_kwargs["read_timeout"]``). None: the backends' defaults.
        retry_denied: retry 403 / PermissionError too (default: permanent, the read fails at once naming the
            shard; opt in for stores whose permissions settle late).
        verify_sha256: check every byte that reaches the decoder against the manifest (on by default; costs
            about 1-2% of decoding); False is an explicit opt-out.
        max_read_bytes: largest single GET; longer runs of episodes are read in pieces (memory per worker is
            about ``(readahead + 1) * max_read_bytes``).
        split_first_read: read a pass's first episode on its own so decoding starts when it has arrived.
        cache: the node-local cache reads go through (:mod:`cache`); None (default): every read is remote.
    """

    retries: int = 3
    backoff_s: float = 0.5
    readahead: int = 1
    verify_sha256: bool = True
    max_read_bytes: int = 64 * 1024 * 1024
    split_first_read: bool = True
    storage_options: dict[str, Any] = field(default_factory=dict)
    read_timeout_s: float | None = DEFAULT_READ_TIMEOUT_S
    retry_denied: bool = False
    cache: CacheConfig | None = None

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise OptionError(f"StreamConfig.retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0:
            raise OptionError(f"StreamConfig.backoff_s must be >= 0, got {self.backoff_s}")
        if self.readahead < 0:
            raise OptionError(f"StreamConfig.readahead must be >= 0, got {self.readahead}")
        if self.max_read_bytes < 1:
            raise OptionError(f"StreamConfig.max_read_bytes must be >= 1, got {self.max_read_bytes}")
        if self.read_timeout_s is not None and not self.read_timeout_s > 0:
            raise OptionError(f"StreamConfig.read_timeout_s must be > 0 or None, got {self.read_timeout_s}")

    def retry_policy(self, url: str | None = None) -> RetryPolicy:
        """The reader's :class:`RetryPolicy` for ``url``: short reads transient unless the file is local (a
        file truncated at rest reads short every time), denials as ``retry_denied`` says."""
        return RetryPolicy(
            attempts=self.retries + 1,
            backoff_s=self.backoff_s,
            retry_denied=self.retry_denied,
            retry_short_reads=url is None or not is_local(url),
        )

    def fs_options(self, url: str) -> dict[str, Any]:
        """``storage_options`` for ``url`` with the default read timeout applied (see :mod:`timeouts`)."""
        return with_read_timeout(url, self.storage_options, self.read_timeout_s)


@dataclass
class ReadCounters:
    """Retries and timeouts of one iteration's reads, counted in the process (DataLoader worker) that reads.

    Attributes:
        retries: failed attempts that were retried.
        timeouts: failed attempts (retried or not) whose error was a read or connect timeout.
        remote_bytes: bytes fetched from the root (every GET that arrived whole).
        cache: episodes hit and missed in the node-local cache, bytes read from it, entries evicted;
            cache_size: the cache's bytes after the last read through it.
        on_change: called with the counters after each read and each failed attempt, under their lock (the
            dataset copies them into its :class:`~lerobot_wds.reader.board.ReaderBoard` row, which the main
            process reads).
    """

    retries: int = 0
    timeouts: int = 0
    remote_bytes: int = 0
    cache: CacheTally = field(default_factory=CacheTally)
    cache_size: int = 0
    on_change: Callable[[ReadCounters], None] | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def failed(self, exc: BaseException, *, retried: bool) -> None:
        with self._lock:
            self.retries += int(retried)
            self.timeouts += int(is_timeout(exc))
            if self.on_change is not None:
                self.on_change(self)

    def fetched(self, nbytes: int) -> None:
        """Counts a read's bytes that arrived from the root."""
        with self._lock:
            self.remote_bytes += nbytes
            if self.on_change is not None:
                self.on_change(self)

    def cached(self, tally: CacheTally, size: int) -> None:
        """Adds a read's cache counts and the cache's size after it."""
        with self._lock:
            self.cache.hits += tally.hits
            self.cache.misses += tally.misses
            self.cache.cached_bytes += tally.cached_bytes
            self.cache.evictions += tally.evictions
            self.cache_size = size
            if self.on_change is not None:
                self.on_change(self)


@dataclass(frozen=True)
class Fetched:
    """A read's bytes and what failed the integrity check (``{episode or None: message}``)."""

    read: Read
    data: bytes
    failures: dict[int, str]


def fetch_once(read: Read, config: StreamConfig) -> bytes:
    """Fetches a read with one GET (ranged unless it is a whole shard) and checks its size."""
    fs, path = open_fs(read.url, config.fs_options(read.url))
    data = fs.cat_file(path) if read.start is None else fs.cat_file(path, start=read.start, end=read.end)
    if len(data) != read.nbytes:
        what = "" if read.start is None else f" {read.start}..{read.end}"
        raise ShortReadError(f"shard {read.url}{what}: got {len(data)} bytes, expected {read.nbytes} (truncated?)")
    return data


def fetch_read(read: Read, config: StreamConfig, counters: ReadCounters | None = None) -> Fetched:
    """Fetches and checks a read, retrying transient errors and short reads ``config.retries`` times.

    Raises:
        ShardReadError: naming the shard: missing ("not found; the manifest lists it"), a permanent error
            (403 / denied, other 4xx) at once, or the last error after all attempts.
    """
    policy = config.retry_policy(read.url)
    counters = counters if counters is not None else ReadCounters()

    def retried(attempt: int, e: BaseException) -> None:
        counters.failed(e, retried=True)
        log.warning(
            "shard %s: attempt %d/%d failed: %s",
            redact_url(read.url),
            attempt,
            policy.attempts,
            redact_text(describe(e)),
        )

    try:
        data = with_retries(
            lambda: fetch_once(read, config),
            what=f"shard {read.url}",
            policy=policy,
            on_retry=retried,
            error=ShardReadError,
        )
    except ShardReadError as e:
        cause = e.__cause__
        if cause is not None:
            counters.failed(cause, retried=False)
        if isinstance(cause, FileNotFoundError) and not policy.is_transient(cause) and not is_denied(cause):
            raise ShardReadError(f"shard {read.url}: not found ({cause}); the manifest lists it") from cause
        raise
    counters.fetched(len(data))
    failures = integrity_failures(read, data) if config.verify_sha256 else {}
    return Fetched(read, data, failures)


def fetch_or_fail(read: Read, config: StreamConfig, counters: ReadCounters | None, skip: bool) -> Fetched:
    """:func:`fetch_read`; with ``skip``, a read that cannot be fetched comes back as failed for each of its
    episodes (no bytes), so ``on_error="skip"`` skips them one by one like any corrupt episode. With
    ``config.cache``, the read goes through the node-local cache (:mod:`cached`)."""
    if config.cache is not None:
        return _fetch_cached(read, config.cache, replace(config, cache=None), counters, skip)
    try:
        return fetch_read(read, config, counters)
    except ShardReadError as e:
        if not skip:
            raise
        return Fetched(read, b"", {ext.episode: f"episode {ext.episode}: {e}" for ext in read.extents})


def _fetch_cached(
    read: Read, cache_config: CacheConfig, config: StreamConfig, counters: ReadCounters | None, skip: bool
) -> Fetched:
    cache = open_or_warn(cache_config)
    if cache is None:
        return fetch_or_fail(read, config, counters, skip)
    tally = CacheTally()

    def remote(sub: Read) -> tuple[bytes, dict[int, str]]:
        got = fetch_or_fail(sub, config, counters, skip)
        return got.data, got.failures

    ranged, data, failures = fetch_through_cache(read, cache, remote, verify=config.verify_sha256, tally=tally)
    if counters is not None:
        counters.cached(tally, cache.size())
    return Fetched(ranged, data, failures)


def fetched_reads(
    reads: Iterable[Read], config: StreamConfig, counters: ReadCounters | None = None, *, skip: bool = False
) -> Iterator[Fetched]:
    """Yields fetched reads in order, keeping up to ``config.readahead`` next ones fetching in the background.

    ``skip``: a read that fails is yielded as failed (:func:`fetch_or_fail`) instead of raising.
    """
    if config.readahead == 0:
        for read in reads:
            yield fetch_or_fail(read, config, counters, skip)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lerobot-wds-readahead")
    pending: deque[Future[Fetched]] = deque()
    it = iter(reads)
    try:
        while True:
            while len(pending) <= config.readahead:
                upcoming = next(it, None)
                if upcoming is None:
                    break
                pending.append(pool.submit(fetch_or_fail, upcoming, config, counters, skip))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
