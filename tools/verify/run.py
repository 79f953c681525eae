"""``verify``: checks a converted root against its manifest (and optionally its source), collecting every problem.

Each shard is streamed once (sha256 and size computed on the way, one sample in memory at a time, restarted
on a transient read error) by :mod:`lerobot_wds.tools.verify.shard`, and every sample is checked by
:mod:`lerobot_wds.tools.verify.episode`. Across shards: every episode exactly once and in
the shard the manifest lists it under, per-shard frame counts, no unlisted shard files. ``--source`` adds
exact row and provenance comparison, ``--decode K`` bit-exact decode parity of K frames per episode and camera
(PSNR against the source, at least ``min_psnr_db``, for a conversion made with ``--reencode``).
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fsspec

from lerobot_wds.convert.source import LeRobotSource
from lerobot_wds.core.errors import FormatError, InputError, RetryError
from lerobot_wds.core.format import MANIFEST_NAME, SHARDS_DIR, Manifest
from lerobot_wds.core.progress import Progress
from lerobot_wds.core.retry import RetryPolicy, read_with_retries
from lerobot_wds.core.timeouts import DEFAULT_READ_TIMEOUT_S, with_read_timeout
from lerobot_wds.core.urls import join_url, listing_target
from lerobot_wds.reader.errors import UnfinishedConversionError
from lerobot_wds.reader.wrong_root import missing_manifest_error
from lerobot_wds.tools.report import Finding, Report
from lerobot_wds.tools.verify.episode import SampleHook
from lerobot_wds.tools.verify.psnr import DEFAULT_MIN_PSNR_DB
from lerobot_wds.tools.verify.shard import check_shard
from lerobot_wds.tools.verify.source import SourceRowsCheck

if TYPE_CHECKING:
    from lerobot_wds.tools.verify.decode import DecodeParityCheck


@dataclass(frozen=True)
class VerifyConfig:
    """What to verify and how thoroughly.

    Attributes:
        dest: The converted root (local path or fsspec URL).
        source: The LeRobot v3 source it was converted from; enables row and provenance comparison.
        decode_frames: Frames per episode and camera to decode and compare with the source (needs ``source``).
        progress: Show progress over episodes (a bar on a terminal, else a plain line every few seconds).
        dest_options: fsspec storage options of ``dest``.
        source_options: fsspec storage options of ``source``.
        retries: Restarts of a shard's check after a transient read error (5xx, reset or cut connection).
        retry_backoff_s: First restart delay; it doubles on every further restart.
        min_psnr_db: Least PSNR against the source of each decoded frame of a re-encoded conversion (its
            manifest options name ``reencode``); any other conversion must decode bit for bit.
    """

    dest: str
    source: str | None = None
    decode_frames: int = 0
    progress: bool = True
    dest_options: dict[str, Any] = field(default_factory=dict)
    source_options: dict[str, Any] = field(default_factory=dict)
    retries: int = 5  # as the converter's 6 attempts per read
    retry_backoff_s: float = 0.5
    min_psnr_db: float = DEFAULT_MIN_PSNR_DB

    def __post_init__(self) -> None:
        if not self.dest:
            raise ValueError("dest must be a path or URL, got an empty string")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.retry_backoff_s < 0:
            raise ValueError(f"retry_backoff_s must be >= 0, got {self.retry_backoff_s}")
        if self.decode_frames < 0:
            raise ValueError(f"decode_frames must be >= 0, got {self.decode_frames}")
        if self.decode_frames and not self.source:
            raise ValueError(f"decode_frames={self.decode_frames} needs a source to compare with (--source)")


def verify(cfg: VerifyConfig) -> Report:
    """Runs every check; returns a report listing each problem (``report.ok`` when there is none).

    Raises:
        SourceError: ``cfg.source`` is not a readable LeRobot v3 dataset (a usage error, not a finding).
        InputError: ``cfg.dest`` is no conversion at all: missing, a LeRobot source... (see :mod:`reader.roots`);
            a conversion without its manifest is a finding.
    """
    # a stalled server raises a read timeout (retried) instead of hanging, unless dest_options set their own
    options = with_read_timeout(cfg.dest, cfg.dest_options, DEFAULT_READ_TIMEOUT_S)
    fs, root = fsspec.core.url_to_fs(cfg.dest, **options)
    root = root.rstrip("/")
    listed, list_options = listing_target(root, options)  # a signed root lists with its query on every request
    list_fs, list_root = fsspec.core.url_to_fs(listed, **list_options)
    report = Report(root=cfg.dest, source=cfg.source)
    retry = {"policy": RetryPolicy(attempts=cfg.retries + 1, backoff_s=cfg.retry_backoff_s)}
    try:
        where = f"{cfg.dest}/{MANIFEST_NAME}"
        data = read_with_retries(lambda: fs.cat_file(join_url(root, MANIFEST_NAME)), what=where, **retry)
        manifest = Manifest.from_json_bytes(data, where=where)
    except FileNotFoundError:
        error = missing_manifest_error(fs, root, cfg.dest)
        if not isinstance(error, UnfinishedConversionError):
            raise error from None  # not a conversion at all: nothing to verify, could not run
        report.add([Finding("manifest", str(error))])  # a conversion without its manifest: a problem found
        return report
    except (RetryError, FormatError) as e:  # unreachable or no manifest at all: could not run, as in inspect
        raise InputError(str(e)) from e
    hooks: list[SampleHook] = []
    decode = None
    if cfg.source:
        source = LeRobotSource(cfg.source, cfg.source_options)
        hooks.append(SourceRowsCheck(source))
        report.add(check_coverage(manifest, list(source.episodes)))
        if cfg.decode_frames:
            from lerobot_wds.tools.verify.decode import DecodeParityCheck  # torch + torchcodec: only when asked

            reencoded = manifest.options.get("reencode") is not None
            decode = DecodeParityCheck(
                source, cfg.decode_frames, min_psnr_db=cfg.min_psnr_db if reencoded else None
            )
            hooks.append(decode)
    report.add(check_manifest(manifest))
    try:
        pattern = join_url(list_root, f"{SHARDS_DIR}/*.tar")
        present = read_with_retries(lambda: list_fs.glob(pattern), what=SHARDS_DIR, **retry)
        report.add(check_unlisted_shards(list_fs, list_root, manifest, present))
    except (RetryError, FileNotFoundError) as e:
        report.add([Finding("unlisted-shard", f"cannot list {cfg.dest}/{SHARDS_DIR}/: {e}")])
    found: dict[int, list[str]] = {}
    opened: set[str] = set()
    progress = Progress(sum(len(s.episodes) for s in manifest.shards), "verify", "episodes", enabled=cfg.progress)
    try:
        for info in manifest.shards:
            before = progress.n
            result = check_shard(
                fs,
                join_url(root, info.path),
                info,
                manifest,
                (_count_into(progress), *hooks),
                retries=cfg.retries,
                backoff_s=cfg.retry_backoff_s,
                on_restart=_rollback(decode, progress, before),
            )
            progress.update_to(before + len(info.episodes))  # samples that could not be read count as done
            report.add(result.findings)
            report.shards += 1
            report.bytes += result.bytes
            report.frames += result.frames
            report.episodes += len(result.episodes)
            if result.opened:
                opened.add(info.path)
            for ep in result.episodes:
                found.setdefault(ep, []).append(info.path)
    finally:
        progress.close()
        if decode is not None:
            report.decoded_frames = decode.decoded_frames
            if decode.min_psnr_db is not None and decode.psnr.frames:
                report.psnr_db = (decode.psnr.min_db, decode.psnr.mean_db)
            decode.close()
    report.add(check_placement(manifest, found, opened))
    return report


def _count_into(progress: Progress) -> SampleHook:
    """A sample hook that counts each readable sample as one episode of progress."""

    def count(*_sample: object) -> list[Finding]:
        progress.update(1)
        return []

    return count


def _rollback(decode: DecodeParityCheck | None, progress: Progress, episodes_done: float) -> Callable[[], None]:
    """Frames decoded and episodes counted by an attempt that is then restarted must not count twice."""
    before = decode.decoded_frames if decode is not None else 0
    psnr = dataclasses.replace(decode.psnr) if decode is not None else None

    def rollback() -> None:
        progress.update_to(episodes_done)
        if decode is not None and psnr is not None:
            decode.decoded_frames = before
            decode.psnr = dataclasses.replace(psnr)

    return rollback


def check_manifest(manifest: Manifest) -> Iterator[Finding]:
    """Checks the manifest on its own: distinct shard paths, each episode listed once, none also skipped."""
    paths = Counter(s.path for s in manifest.shards)
    for path, n in sorted(paths.items()):
        if n > 1:
            yield Finding("manifest", f"shard listed {n} times", path)
    listed: dict[int, list[str]] = {}
    for s in manifest.shards:
        for ep in s.episodes:
            listed.setdefault(ep, []).append(s.path)
    for ep, where in sorted(listed.items()):
        if len(where) > 1:
            yield Finding("manifest", f"episode listed under several shards: {where}", where[1], ep)
    for entry in manifest.skipped:
        skipped = entry.get("episode_index")
        if isinstance(skipped, int) and skipped in listed:
            ep = skipped
            yield Finding(
                "manifest", f"episode listed as skipped and under shard {listed[ep][0]}", listed[ep][0], ep
            )


def check_unlisted_shards(
    fs: fsspec.AbstractFileSystem, root: str, manifest: Manifest, present: list[str]
) -> Iterator[Finding]:
    """Reports ``shards/*.tar`` files (``present``, as ``fs.glob`` lists them) the manifest does not list."""
    listed = {s.path for s in manifest.shards}
    for rel in sorted(posixpath.relpath(fs._strip_protocol(p), fs._strip_protocol(root)) for p in present):
        if rel not in listed:
            yield Finding("unlisted-shard", "shard file present but not in the manifest", rel)


def check_placement(manifest: Manifest, found: dict[int, list[str]], opened: set[str]) -> Iterator[Finding]:
    """Every episode exactly once across shards, in the shard whose manifest entry lists it."""
    for ep, where in sorted(found.items()):
        if len(where) > 1:
            for extra in where[1:]:
                yield Finding(
                    "duplicate-episode", f"episode found in shards {where}; it must appear exactly once", extra, ep
                )
    listed = {s.path: set(s.episodes) for s in manifest.shards}
    for s in manifest.shards:
        for ep in s.episodes:
            if s.path in opened and s.path not in found.get(ep, []):
                yield Finding(
                    "missing-episode", "listed for this shard in the manifest but not found in it", s.path, ep
                )
    for ep, where in sorted(found.items()):
        for path in dict.fromkeys(where):
            if ep not in listed.get(path, set()):
                yield Finding(
                    "unlisted-episode", "found in this shard but the manifest does not list it there", path, ep
                )


def check_coverage(manifest: Manifest, source_episodes: list[int]) -> Iterator[Finding]:
    """With a source: converted + skipped episodes are exactly the selected ones, and all exist in the source."""
    selected = manifest.options.get("episodes")
    wanted = set(source_episodes if selected is None else selected)
    converted = {ep for s in manifest.shards for ep in s.episodes}
    skipped = {e.get("episode_index") for e in manifest.skipped}
    for ep in sorted(wanted - converted - skipped):
        yield Finding(
            "coverage", "selected for conversion but neither in a shard nor recorded as skipped", episode=ep
        )
    for ep in sorted(converted - set(source_episodes)):
        yield Finding("coverage", "in the manifest but not in the source's meta/episodes", episode=ep)
