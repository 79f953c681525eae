"""``verify``: checks a converted root against its manifest (and optionally its source), collecting every problem.

Each shard is streamed once (sha256 and size computed on the way, one sample in memory at a time) and every
sample is checked by :mod:`lerobot_wds.tools.verify_episode`. Across shards: every episode exactly once and in
the shard the manifest lists it under, per-shard frame counts, no unlisted shard files. ``--source`` adds
exact row and provenance comparison, ``--decode K`` bit-exact decode parity of K frames per episode and camera.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
from tqdm import tqdm

from lerobot_wds.convert.sink import is_transient
from lerobot_wds.convert.source import LeRobotSource
from lerobot_wds.reader.format import MANIFEST_NAME, SHARDS_DIR, FormatError, Manifest, ShardInfo
from lerobot_wds.tools.report import Finding, Report
from lerobot_wds.tools.verify_episode import SampleHook, check_sample
from lerobot_wds.tools.verify_source import SourceRowsCheck
from lerobot_wds.tools.verify_tar import HashingReader, group_samples, iter_members


@dataclass(frozen=True)
class VerifyConfig:
    """What to verify and how thoroughly.

    Attributes:
        dest: The converted root (local path or fsspec URL).
        source: The LeRobot v3 source it was converted from; enables row and provenance comparison.
        decode_frames: Frames per episode and camera to decode and compare with the source (needs ``source``).
        progress: Show a tqdm bar over shards.
        dest_options: fsspec storage options of ``dest``.
        source_options: fsspec storage options of ``source``.
    """

    dest: str
    source: str | None = None
    decode_frames: int = 0
    progress: bool = True
    dest_options: dict[str, Any] = field(default_factory=dict)
    source_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.dest:
            raise ValueError("dest must be a path or URL, got an empty string")
        if self.decode_frames < 0:
            raise ValueError(f"decode_frames must be >= 0, got {self.decode_frames}")
        if self.decode_frames and not self.source:
            raise ValueError(f"decode_frames={self.decode_frames} needs a source to compare with (--source)")


def verify(cfg: VerifyConfig) -> Report:
    """Runs every check; returns a report listing each problem (``report.ok`` when there is none).

    Raises:
        SourceError: ``cfg.source`` is not a readable LeRobot v3 dataset (a usage error, not a finding).
    """
    fs, root = fsspec.core.url_to_fs(cfg.dest, **cfg.dest_options)
    root = root.rstrip("/")
    report = Report(root=cfg.dest, source=cfg.source)
    try:
        manifest = Manifest.from_json_bytes(
            fs.cat_file(f"{root}/{MANIFEST_NAME}"), where=f"{cfg.dest}/{MANIFEST_NAME}"
        )
    except FileNotFoundError:
        report.add([Finding("manifest", f"{cfg.dest}/{MANIFEST_NAME} is missing (conversion not finished?)")])
        return report
    except FormatError as e:
        report.add([Finding("manifest", str(e))])
        return report
    hooks: list[SampleHook] = []
    decode = None
    if cfg.source:
        source = LeRobotSource(cfg.source, cfg.source_options)
        hooks.append(SourceRowsCheck(source))
        report.add(check_coverage(manifest, list(source.episodes)))
        if cfg.decode_frames:
            from lerobot_wds.tools.verify_decode import DecodeParityCheck  # torch + torchcodec: only when asked

            decode = DecodeParityCheck(source, cfg.decode_frames)
            hooks.append(decode)
    report.add(check_manifest(manifest))
    report.add(check_unlisted_shards(fs, root, manifest))
    found: dict[int, list[str]] = {}
    opened: set[str] = set()
    try:
        for info in tqdm(manifest.shards, desc="verify", unit="shard", disable=not cfg.progress):
            result = check_shard(fs, f"{root}/{info.path}", info, manifest, tuple(hooks))
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
        if decode is not None:
            report.decoded_frames = decode.decoded_frames
            decode.close()
    report.add(check_placement(manifest, found, opened))
    return report


@dataclass
class ShardResult:
    """One shard's findings, the episodes found in it (in order), its frames and bytes, and if it opened."""

    findings: list[Finding] = field(default_factory=list)
    episodes: list[int] = field(default_factory=list)
    frames: int = 0
    bytes: int = 0
    opened: bool = False


def check_shard(
    fs: fsspec.AbstractFileSystem, path: str, info: ShardInfo, manifest: Manifest, hooks: tuple[SampleHook, ...]
) -> ShardResult:
    """Streams one shard: size, sha256, tar structure, every sample, and its frame count vs the manifest."""
    res = ShardResult()
    shard = info.path
    try:
        raw = fs.open(path, "rb")
    except FileNotFoundError:
        res.findings.append(Finding("missing-shard", f"listed in the manifest but not found at {path}", shard))
        return res
    reader = HashingReader(raw)
    try:
        with raw:
            _check_samples(reader, shard, manifest, hooks, res)
            reader.drain()
    except Exception as e:
        if not (isinstance(e, OSError) or is_transient(e)):
            raise  # a bug, not a transfer problem
        # the shard could not be read to its end: its size, hash and episodes are unknown
        res.findings.append(Finding("read", f"reading {path} failed after {reader.bytes} bytes: {e!r}", shard))
        res.bytes = reader.bytes
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
    return res


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
        ep = entry.get("episode_index")
        if ep in listed:
            yield Finding(
                "manifest", f"episode listed as skipped and under shard {listed[ep][0]}", listed[ep][0], ep
            )


def check_unlisted_shards(fs: fsspec.AbstractFileSystem, root: str, manifest: Manifest) -> Iterator[Finding]:
    """Reports ``shards/*.tar`` files that the manifest does not list (leftovers of another run?)."""
    listed = {s.path for s in manifest.shards}
    present = sorted(posixpath.relpath(fs._strip_protocol(p), fs._strip_protocol(root))
                     for p in fs.glob(f"{root}/{SHARDS_DIR}/*.tar"))  # fmt: skip
    for rel in present:
        if rel not in listed:
            yield Finding("unlisted-shard", "shard file present but not in the manifest", rel)


def check_placement(manifest: Manifest, found: dict[int, list[str]], opened: set[str]) -> Iterator[Finding]:
    """Every episode exactly once across shards, in the shard whose manifest entry lists it."""
    for ep, where in sorted(found.items()):
        if len(where) > 1:
            for extra in where[1:]:
                yield Finding("duplicate-episode", f"episode found in shards {where}; it must appear exactly once",
                              extra, ep)  # fmt: skip
    listed = {s.path: set(s.episodes) for s in manifest.shards}
    for s in manifest.shards:
        for ep in s.episodes:
            if s.path in opened and s.path not in found.get(ep, []):
                yield Finding("missing-episode", "listed for this shard in the manifest but not found in it",
                              s.path, ep)  # fmt: skip
    for ep, where in sorted(found.items()):
        for path in dict.fromkeys(where):
            if ep not in listed.get(path, set()):
                yield Finding("unlisted-episode", "found in this shard but the manifest does not list it there",
                              path, ep)  # fmt: skip


def check_coverage(manifest: Manifest, source_episodes: list[int]) -> Iterator[Finding]:
    """With a source: converted + skipped episodes are exactly the selected ones, and all exist in the source."""
    selected = manifest.options.get("episodes")
    wanted = set(source_episodes if selected is None else selected)
    converted = {ep for s in manifest.shards for ep in s.episodes}
    skipped = {e.get("episode_index") for e in manifest.skipped}
    for ep in sorted(wanted - converted - skipped):
        yield Finding("coverage", "selected for conversion but neither in a shard nor recorded as skipped",
                      episode=ep)  # fmt: skip
    for ep in sorted(converted - set(source_episodes)):
        yield Finding("coverage", "in the manifest but not in the source's meta/episodes", episode=ep)
