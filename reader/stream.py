"""Shard transport: whole shards fetched sequentially through fsspec, with retries and read-ahead.

One shard = one GET (``fs.cat_file``), the access pattern buckets and CDNs serve best. A fetch that fails or
comes back with a size other than the manifest's is retried from scratch with exponential backoff; nothing of
a shard is handed on before all of it arrived and checked, so a retry can never duplicate samples. The next
shard(s) are fetched in a background thread while the current one is parsed and decoded.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec

from lerobot_wds.reader.errors import ShardReadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamConfig:
    """How shards are fetched: retries, backoff, read-ahead depth, checksum and fsspec storage options."""

    retries: int = 3
    backoff_s: float = 0.5
    readahead: int = 1
    verify_sha256: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"StreamConfig.retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0:
            raise ValueError(f"StreamConfig.backoff_s must be >= 0, got {self.backoff_s}")
        if self.readahead < 0:
            raise ValueError(f"StreamConfig.readahead must be >= 0, got {self.readahead}")


@dataclass(frozen=True)
class ShardSpec:
    """A shard to fetch: its full URL and what the manifest promises about it."""

    url: str
    bytes: int
    sha256: str
    episodes: tuple[int, ...] = ()


def join_url(root: str, relative: str) -> str:
    """Joins a root (local path or fsspec URL) and a manifest-relative path with a single slash."""
    return f"{root.rstrip('/')}/{relative.lstrip('/')}"


def fetch_once(spec: ShardSpec, config: StreamConfig) -> bytes:
    """Fetches a whole shard with one read and checks its size (and sha256 if configured)."""
    fs, path = fsspec.core.url_to_fs(spec.url, **config.storage_options)
    data = fs.cat_file(path)
    if len(data) != spec.bytes:
        raise ShardReadError(f"shard {spec.url}: got {len(data)} bytes, manifest says {spec.bytes} (truncated?)")
    if config.verify_sha256:
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256:
            raise ShardReadError(f"shard {spec.url}: sha256 {digest}, manifest says {spec.sha256}")
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


def fetch_shard(spec: ShardSpec, config: StreamConfig) -> bytes:
    """Fetches a shard, retrying failed or short reads ``config.retries`` times with exponential backoff.

    Raises:
        ShardReadError: naming the shard, the attempts and the last error.
    """
    last: BaseException | None = None
    transient = _transient_errors()
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(config.backoff_s * 2 ** (attempt - 1))  # retry backoff
        try:
            return fetch_once(spec, config)
        except FileNotFoundError as e:
            raise ShardReadError(f"shard {spec.url}: not found ({e}); the manifest lists it") from e
        except transient as e:
            last = e
            log.warning("shard %s: attempt %d/%d failed: %s", spec.url, attempt + 1, config.retries + 1, e)
    raise ShardReadError(f"shard {spec.url}: failed after {config.retries + 1} attempts: {last}") from last


def fetched_shards(specs: Iterable[ShardSpec], config: StreamConfig) -> Iterator[tuple[ShardSpec, bytes]]:
    """Yields (spec, bytes) in order, keeping up to ``config.readahead`` next shards fetching in the background."""
    if config.readahead == 0:
        for spec in specs:
            yield spec, fetch_shard(spec, config)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lerobot-wds-readahead")
    pending: deque[tuple[ShardSpec, Future[bytes]]] = deque()
    it = iter(specs)
    try:
        while True:
            while len(pending) <= config.readahead:
                spec = next(it, None)
                if spec is None:
                    break
                pending.append((spec, pool.submit(fetch_shard, spec, config)))
            if not pending:
                return
            spec, future = pending.popleft()
            yield spec, future.result()
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
