"""``verify`` of one shard: stream it once (size, sha256, tar structure, every sample), retrying transient reads.

A transient read error (5xx, connection reset or cut body) restarts the shard's check from its first byte,
since a tar stream cannot resume in the middle; the failed attempt's findings are discarded so nothing is
reported twice. Permanent errors (404, denied, corrupt data) are never retried and are reported at once.
Retry classification and backoff are :mod:`lerobot_wds.core.retry`'s, the one policy of reader, converter
and verify (403 / denied is permanent: reported at once).
"""

from __future__ import annotations

import logging
import tarfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import fsspec

from lerobot_wds.core.errors import RetryError
from lerobot_wds.core.format import Manifest, ShardInfo
from lerobot_wds.core.redact import redact_text, redact_url
from lerobot_wds.core.retry import RetryPolicy, is_transient, with_retries
from lerobot_wds.tools.report import Finding
from lerobot_wds.tools.verify.episode import SampleHook, check_sample
from lerobot_wds.tools.verify.tar import HashingReader, group_samples, iter_members

log = logging.getLogger(__name__)


@dataclass
class ShardResult:
    """One shard's findings, the episodes found in it (in order), its frames and bytes, and if it opened."""

    findings: list[Finding] = field(default_factory=list)
    episodes: list[int] = field(default_factory=list)
    frames: int = 0
    bytes: int = 0
    opened: bool = False


def check_shard(
    fs: fsspec.AbstractFileSystem,
    path: str,
    info: ShardInfo,
    manifest: Manifest,
    hooks: tuple[SampleHook, ...],
    *,
    retries: int = 0,
    backoff_s: float = 0.0,
    on_restart: Callable[[], None] | None = None,
) -> ShardResult:
    """Checks one shard, restarting from its start on a transient read error up to ``retries`` times.

    Args:
        fs: The filesystem holding the shard.
        path: The shard's full path in ``fs``.
        info: The shard's manifest entry.
        manifest: The whole manifest (fps and camera keys of every sample).
        hooks: Extra per-sample checks.
        retries: Restarts allowed after transient read errors (0: report the first one).
        backoff_s: First restart delay; it doubles on every further restart.
        on_restart: Called before each restart, e.g. to roll back counters of hooks run by the failed attempt.
    """
    attempts: list[ShardResult] = []

    def attempt() -> ShardResult:
        attempts.append(ShardResult())
        return _check_once(fs, path, info, manifest, hooks, attempts[-1])

    def restart(n: int, e: BaseException) -> None:
        log.warning(
            "verify: reading %s failed after %d bytes (attempt %d of %d: %s); checking it again from the start",
            redact_url(path),
            attempts[-1].bytes,
            n,
            retries + 1,
            redact_text(_describe(e)),
        )
        if on_restart is not None:
            on_restart()

    policy = RetryPolicy(attempts=retries + 1, backoff_s=backoff_s)
    try:
        return with_retries(attempt, what=f"reading {path}", policy=policy, on_retry=restart)
    except RetryError as e:
        if e.__cause__ is None or not policy.is_transient(e.__cause__):
            raise (e.__cause__ or e) from None  # _check_once reports permanent read errors: this is a bug
        # still failing: the shard's size, hash and remaining episodes are unknown
        res, cause = attempts[-1], _describe(e.__cause__)
        message = f"reading {path} failed after {res.bytes} bytes ({len(attempts)} attempts): {cause}"
        res.findings.append(Finding("read", message, info.path))
        return res


def _describe(e: BaseException) -> str:
    """The error and, for fsspec's "not found" that wraps a failed HTTP request, the status it hides."""
    if isinstance(e, FileNotFoundError) and e.__cause__ is not None:
        return f"{e!r} caused by {e.__cause__!r}"
    return repr(e)


def _check_once(
    fs: fsspec.AbstractFileSystem,
    path: str,
    info: ShardInfo,
    manifest: Manifest,
    hooks: tuple[SampleHook, ...],
    res: ShardResult,
) -> ShardResult:
    """One pass over the shard into ``res``; raises transient errors (for a restart), reports the rest."""
    shard = info.path
    try:
        raw = fs.open(path, "rb")
    except FileNotFoundError as e:
        if is_transient(e):  # fsspec's HTTP filesystem reports a 503 on the size request as "not found"
            raise
        res.findings.append(Finding("missing-shard", f"listed in the manifest but not found at {path}", shard))
        return res
    reader = HashingReader(raw, [(e.offset, e.length) for e in info.extents])
    try:
        with raw:
            _check_samples(reader, shard, manifest, hooks, res)
            reader.drain()
    except Exception as e:
        res.bytes = reader.bytes
        if is_transient(e):
            raise
        if not isinstance(e, OSError):
            raise  # a bug, not a transfer problem
        # a permanent read error: the shard's size, hash and remaining episodes are unknown
        res.findings.append(Finding("read", f"reading {path} failed after {reader.bytes} bytes: {e!r}", shard))
        return res
    res.opened = True
    res.bytes = reader.bytes
    if reader.bytes != info.bytes:
        res.findings.append(Finding("size", f"{reader.bytes} bytes, manifest says {info.bytes}", shard))
    if reader.sha256.hexdigest() != info.sha256:
        res.findings.append(Finding("sha256", f"{reader.sha256.hexdigest()}, manifest says {info.sha256}", shard))
    if res.frames != info.frames:
        message = f"episodes found hold {res.frames} frames, manifest says {info.frames}"
        res.findings.append(Finding("frames", message, shard))
    _check_extents(info, reader, res)
    return res


def _check_extents(info: ShardInfo, reader: HashingReader, res: ShardResult) -> None:
    """v2 manifests: every episode's extent is contiguous, in order, and its bytes match its sha256."""
    ends = [e.offset + e.length for e in info.extents]
    for i, (ext, got) in enumerate(zip(info.extents, reader.extent_digests, strict=True)):
        where = f"episode {ext.episode} (bytes {ext.offset}..{ext.offset + ext.length})"
        if ext.offset != (ends[i - 1] if i else 0):
            res.findings.append(
                Finding(
                    "extent",
                    f"{where}: does not start where the previous episode ends",
                    info.path,
                    episode=ext.episode,
                )
            )
        if got is not None and got != ext.sha256:  # None: not all read (the size / tar findings say so)
            res.findings.append(
                Finding(
                    "extent-sha256",
                    f"{where}: sha256 {got}, manifest says {ext.sha256}",
                    info.path,
                    episode=ext.episode,
                )
            )


def _check_samples(
    reader: HashingReader, shard: str, manifest: Manifest, hooks: tuple[SampleHook, ...], res: ShardResult
) -> None:
    """Checks every sample of the tar stream into ``res``; a corrupt or truncated tar ends the stream."""
    keys: Counter[str] = Counter()
    try:
        for sample in group_samples(iter_members(reader)):
            keys[sample.key] += 1
            if keys[sample.key] == 2:
                message = f"sample key {sample.key!r} comes back after other samples (webdataset would split it)"
                res.findings.append(Finding("non-contiguous", message, shard))
            checked = check_sample(shard, sample, fps=manifest.fps, camera_keys=manifest.camera_keys, hooks=hooks)
            res.findings.extend(checked.findings)
            if checked.episode is not None and keys[sample.key] == 1:
                res.episodes.append(checked.episode)
                res.frames += checked.frames
    except tarfile.TarError as e:
        res.findings.append(Finding("tar", f"corrupt or truncated tar after {reader.bytes} bytes: {e}", shard))
