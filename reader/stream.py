"""Transport: the planned reads (:mod:`reads`) fetched in order through fsspec, with retries and read-ahead.

A read is one GET (``fs.cat_file``, with a byte range when it is not a whole shard). A fetch that fails or
comes back with a size other than planned is retried from scratch with exponential backoff; nothing of a read
is handed on before all of it arrived and was checked against the manifest (per-episode sha256, or the
shard's for v1 manifests), so a retry can never duplicate samples. The next read(s) are fetched and checked
in a background thread while the current one is parsed and decoded.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec

from lerobot_wds.reader.errors import ShardReadError
from lerobot_wds.reader.reads import Read, integrity_failures

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamConfig:
    """How reads are fetched: retries, backoff, read-ahead, integrity, read size and fsspec storage options.

    Attributes:
        verify_sha256: check every byte that reaches the decoder against the manifest (on by default; costs
            about 1-2% of decoding); False is an explicit opt-out.
        max_read_bytes: largest single GET; longer runs of episodes are read in pieces (memory per worker is
            about ``(readahead + 1) * max_read_bytes``).
        split_first_read: read a pass's first episode on its own so decoding starts when it has arrived.
    """

    retries: int = 3
    backoff_s: float = 0.5
    readahead: int = 1
    verify_sha256: bool = True
    max_read_bytes: int = 64 * 1024 * 1024
    split_first_read: bool = True
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"StreamConfig.retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0:
            raise ValueError(f"StreamConfig.backoff_s must be >= 0, got {self.backoff_s}")
        if self.readahead < 0:
            raise ValueError(f"StreamConfig.readahead must be >= 0, got {self.readahead}")
        if self.max_read_bytes < 1:
            raise ValueError(f"StreamConfig.max_read_bytes must be >= 1, got {self.max_read_bytes}")


@dataclass(frozen=True)
class Fetched:
    """A read's bytes and what failed the integrity check (``{episode or None: message}``)."""

    read: Read
    data: bytes
    failures: dict[int | None, str]


def fetch_once(read: Read, config: StreamConfig) -> bytes:
    """Fetches a read with one GET (ranged unless it is a whole shard) and checks its size."""
    fs, path = fsspec.core.url_to_fs(read.url, **config.storage_options)
    data = fs.cat_file(path) if read.start is None else fs.cat_file(path, start=read.start, end=read.end)
    if len(data) != read.nbytes:
        what = "" if read.start is None else f" {read.start}..{read.end}"
        raise ShardReadError(f"shard {read.url}{what}: got {len(data)} bytes, expected {read.nbytes} (truncated?)")
    return data


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors worth retrying: I/O errors and the HTTP / S3 client errors fsspec backends let through."""
    errors: list[type[BaseException]] = [OSError, ShardReadError]
    try:
        import aiohttp

        errors.append(aiohttp.ClientError)
    except ImportError:
        pass
    try:
        import botocore.exceptions

        errors += [botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError]
    except ImportError:
        pass
    return tuple(errors)


def fetch_read(read: Read, config: StreamConfig) -> Fetched:
    """Fetches and checks a read, retrying failed or short reads ``config.retries`` times with backoff.

    Raises:
        ShardReadError: naming the shard, the attempts and the last error.
    """
    last: BaseException | None = None
    transient = _transient_errors()
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(config.backoff_s * 2 ** (attempt - 1))  # retry backoff
        try:
            data = fetch_once(read, config)
        except FileNotFoundError as e:
            raise ShardReadError(f"shard {read.url}: not found ({e}); the manifest lists it") from e
        except transient as e:
            last = e
            log.warning("shard %s: attempt %d/%d failed: %s", read.url, attempt + 1, config.retries + 1, e)
            continue
        failures = integrity_failures(read, data) if config.verify_sha256 else {}
        return Fetched(read, data, failures)
    raise ShardReadError(f"shard {read.url}: failed after {config.retries + 1} attempts: {last}") from last


def fetched_reads(reads: Iterable[Read], config: StreamConfig) -> Iterator[Fetched]:
    """Yields fetched reads in order, keeping up to ``config.readahead`` next ones fetching in the background."""
    if config.readahead == 0:
        for read in reads:
            yield fetch_read(read, config)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lerobot-wds-readahead")
    pending: deque[Future[Fetched]] = deque()
    it = iter(reads)
    try:
        while True:
            while len(pending) <= config.readahead:
                read = next(it, None)
                if read is None:
                    break
                pending.append(pool.submit(fetch_read, read, config))
            if not pending:
                return
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
