"""Completion records, per-part manifests and ``finalize``: the manifest is built from them and written last.

Bookkeeping lives under ``<root>/_convert/`` (readers ignore it):

- ``_convert/shards/shard-000000.json`` — written right after its shard is uploaded; a re-run skips a shard
  whose record matches the current plan (``plan_key``) and whose size at the destination matches.
- ``_convert/part-00000-of-00004.json`` — written when a part has all its shards.

A single-part run removes ``_convert/`` once its manifest is written; a re-run then takes the manifest's shards
(same source and options, so the same plan) as complete.

``finalize`` needs every part of one split, checks they agree and that each shard is present with the
recorded size, removes the temp files of killed runs, then writes ``manifest.json``. It streams: parts are read
one at a time, each shard's manifest entry is serialised as its part is read and spilled to a local temporary
file, and ``manifest.json`` is written from there in shard order, so memory holds a few numbers per shard (not
per episode) plus the skipped episodes. A single run is part 0 of 1 followed by ``finalize``, so an array job
plus ``finalize`` produces exactly the bytes of a single run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, replace
from typing import Any, BinaryIO

from lerobot_wds.convert.errors import FinalizeError, FinalizeInputError
from lerobot_wds.convert.sink import Sink
from lerobot_wds.core.format import (
    MANIFEST_NAME,
    META_DIR,
    Manifest,
    ManifestTotals,
    ShardInfo,
    manifest_json_chunks,
    shard_json,
)

WORK_DIR = "_convert"
_PART_RE = re.compile(r"part-(\d{5})-of-(\d{5})\.json$")


def fingerprint(obj: Any) -> str:
    """Returns the sha256 of ``obj``'s canonical JSON (used to tie records to a source + options + plan)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def record_path(shard_index: int) -> str:
    return f"{WORK_DIR}/shards/shard-{shard_index:06d}.json"


def part_path(part_index: int, part_count: int) -> str:
    return f"{WORK_DIR}/part-{part_index:05d}-of-{part_count:05d}.json"


@dataclass(frozen=True)
class ShardRecord:
    """A shard's completion record: its manifest entry, the episodes skipped in it, and the plan it follows."""

    shard: ShardInfo
    skipped: list[dict[str, Any]]
    plan_key: str

    def to_json_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @classmethod
    def from_json_bytes(cls, data: bytes, *, where: str) -> ShardRecord:
        try:
            raw = json.loads(data)
            return cls(shard=ShardInfo(**raw["shard"]), skipped=list(raw["skipped"]), plan_key=raw["plan_key"])
        except (ValueError, TypeError, KeyError) as e:
            raise FinalizeError(f"{where}: not a valid shard completion record: {e}") from e


@dataclass(frozen=True)
class PartManifest:
    """What one part contributes: its shards (empty ones included) plus everything the manifest repeats."""

    part_index: int
    part_count: int
    planned_shards: int
    plan_key: str
    fps: float
    features: dict[str, Any]
    camera_keys: list[str]
    source: dict[str, Any]
    options: dict[str, Any]
    shards: list[ShardInfo]
    skipped: list[dict[str, Any]]

    def to_json_bytes(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True, indent=1) + "\n").encode()

    @classmethod
    def from_json_bytes(cls, data: bytes, *, where: str) -> PartManifest:
        try:
            raw = json.loads(data)
            shards = [ShardInfo(**s) for s in raw.pop("shards")]
            return cls(shards=shards, **raw)
        except (ValueError, TypeError, KeyError) as e:
            raise FinalizeError(f"{where}: not a valid part manifest: {e}") from e


def read_record(sink: Sink, shard_index: int) -> ShardRecord | None:
    """Returns a shard's completion record, or None when there is none yet."""
    data = sink.read_bytes(record_path(shard_index))
    if data is None:
        return None
    return ShardRecord.from_json_bytes(data, where=f"{sink.url}/{record_path(shard_index)}")


def find_part_counts(sink: Sink) -> dict[int, list[int]]:
    """Returns ``{part_count: [part indices found]}`` for the part manifests at the destination."""
    found: dict[int, list[int]] = {}
    for rel in sink.glob(f"{WORK_DIR}/part-*-of-*.json"):
        m = _PART_RE.search(rel)
        if m:
            found.setdefault(int(m.group(2)), []).append(int(m.group(1)))
    return {k: sorted(v) for k, v in found.items()}


# What every part of one split repeats; parts that differ on any of them come from different runs.
_SHARED_FIELDS = (
    "part_count",
    "planned_shards",
    "plan_key",
    "fps",
    "features",
    "camera_keys",
    "source",
    "options",
)


@dataclass(frozen=True)
class FinalizeSummary:
    """What the written manifest holds (its totals and how many episodes were skipped)."""

    totals: ManifestTotals
    skipped: int


@dataclass(frozen=True)
class _Entry:
    """One shard of the manifest: its path and size, and where its serialised entry lies in the spill file."""

    path: str
    bytes: int
    episodes: int
    frames: int
    offset: int
    length: int


@dataclass
class _Merged:
    head: PartManifest  # the first part without its shards and skipped episodes
    entries: list[_Entry]  # shards with episodes, in path order
    skipped: list[dict[str, Any]]


def _read_part(sink: Sink, index: int, count: int) -> PartManifest:
    rel = part_path(index, count)
    data = sink.read_bytes(rel)
    if data is None:
        raise FinalizeError(f"{sink.url}/{rel}: part manifest disappeared while finalizing")
    return PartManifest.from_json_bytes(data, where=f"{sink.url}/{rel}")


def _check_agrees(part: PartManifest, first: PartManifest, where: str) -> None:
    for name in _SHARED_FIELDS:
        if getattr(part, name) != getattr(first, name):
            raise FinalizeError(
                f"{where}: part {part.part_index}/{part.part_count} disagrees with part {first.part_index} on "
                f"{name!r}: {getattr(part, name)!r} vs {getattr(first, name)!r} (parts of different runs?)"
            )


def merge_parts(sink: Sink, part_count: int, spill: BinaryIO) -> _Merged:
    """Reads the parts one at a time, checks they fit together and spills each shard's entry to ``spill``."""
    head: PartManifest | None = None
    entries: list[_Entry] = []
    skipped: list[dict[str, Any]] = []
    paths: set[str] = set()
    listed = 0
    for i in range(part_count):
        part = _read_part(sink, i, part_count)
        if head is None:
            head = replace(part, shards=[], skipped=[])
        _check_agrees(part, head, sink.url)
        for s in part.shards:
            listed += 1
            paths.add(s.path)
            if s.episodes:  # a shard whose episodes were all skipped has no tar
                entry = shard_json(s)
                entries.append(_Entry(s.path, s.bytes, len(s.episodes), s.frames, spill.tell(), len(entry)))
                spill.write(entry)
        skipped.extend(part.skipped)
    if head is None:
        raise FinalizeError(f"{sink.url}: a split has at least 1 part, got {part_count}")
    if len(paths) != head.planned_shards or len(paths) != listed:
        raise FinalizeError(
            f"{sink.url}: parts list {len(paths)} distinct shards ({listed} entries), "
            f"the plan has {head.planned_shards}"
        )
    entries.sort(key=lambda e: e.path)
    skipped.sort(key=lambda s: s["episode_index"])
    return _Merged(head, entries, skipped)


def _write_manifest(sink: Sink, merged: _Merged, spill: BinaryIO, tmp: str) -> ManifestTotals:
    """Writes ``manifest.json`` from the spilled entries, through a local file; returns its totals."""
    h, entries = merged.head, merged.entries
    totals = ManifestTotals(
        shards=len(entries),
        episodes=sum(e.episodes for e in entries),
        frames=sum(e.frames for e in entries),
        bytes=sum(e.bytes for e in entries),
    )
    head = Manifest(h.fps, h.features, h.camera_keys, [], h.source, h.options, merged.skipped)

    def spilled() -> Any:
        for e in entries:
            spill.seek(e.offset)
            yield spill.read(e.length)

    local = os.path.join(tmp, MANIFEST_NAME)
    with open(local, "wb") as out:
        for chunk in manifest_json_chunks(head, spilled(), totals):
            out.write(chunk)
    sink.put_file(local, MANIFEST_NAME)
    return totals


def finalize(sink: Sink, part_count: int | None = None) -> FinalizeSummary:
    """Checks every part and shard of a split at ``sink`` and writes ``manifest.json`` last.

    Args:
        sink: The destination root.
        part_count: Which split to finalize; ``None`` means the only one present.

    Raises:
        FinalizeError: No parts, several splits and no ``part_count``, a missing part, parts that disagree,
            or a shard missing or of the wrong size at the destination.
    """
    counts = find_part_counts(sink)
    if not counts:
        if sink.size(f"{META_DIR}/info.json") is None:  # not even the meta a conversion copies first
            raise FinalizeInputError(
                f"{sink.url}: no conversion there (no meta/info.json, no part manifests): give the DEST of "
                "'lerobot-wds convert SRC DEST --part I/N'"
            )
        raise FinalizeError(f"{sink.url}: no part manifests under {WORK_DIR}/ (did any convert part finish?)")
    if part_count is None:
        if len(counts) > 1:
            raise FinalizeError(f"{sink.url}: part manifests of several splits {sorted(counts)}; pass --parts N")
        part_count = next(iter(counts))
    have = counts.get(part_count, [])
    missing = sorted(set(range(part_count)) - set(have))
    if missing:
        raise FinalizeError(f"{sink.url}: parts {missing} of {part_count} have not finished (found {have})")
    with tempfile.TemporaryDirectory(prefix="lerobot-wds-finalize-") as tmp:
        with open(os.path.join(tmp, "entries"), "w+b") as spill:
            merged = merge_parts(sink, part_count, spill)
            for e in merged.entries:
                size = sink.size(e.path)
                if size != e.bytes:
                    found = "missing" if size is None else f"{size} bytes"
                    raise FinalizeError(f"{sink.url}/{e.path}: expected {e.bytes} bytes, found {found}")
            sink.sweep_partials()  # every part has finished: temp files left by killed runs have no writer
            totals = _write_manifest(sink, merged, spill, tmp)
    return FinalizeSummary(totals, len(merged.skipped))
