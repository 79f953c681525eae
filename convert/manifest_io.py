"""Completion records, per-part manifests and ``finalize``: the manifest is built from them and written last.

Bookkeeping lives under ``<root>/_convert/`` (readers ignore it):

- ``_convert/shards/shard-000000.json`` — written right after its shard is uploaded; a re-run skips a shard
  whose record matches the current plan (``plan_key``) and whose size at the destination matches.
- ``_convert/part-00000-of-00004.json`` — written when a part has all its shards.

A single-part run removes ``_convert/`` once its manifest is written; a re-run then takes the manifest's shards
(same source and options, so the same plan) as complete.

``finalize`` needs every part of one split, checks they agree and that each shard is present with the
recorded size, removes the temp files of killed runs, then writes ``manifest.json``. A single run is part 0
of 1 followed by ``finalize``, so an array job plus ``finalize`` produces exactly the bytes of a single run.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from lerobot_wds.convert.errors import FinalizeError, FinalizeInputError
from lerobot_wds.convert.sink import Sink
from lerobot_wds.core.format import MANIFEST_NAME, META_DIR, Manifest, ShardInfo

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


def build_manifest(parts: list[PartManifest], *, where: str) -> Manifest:
    """Merges the parts of one split into the manifest; raises FinalizeError when they don't fit together."""
    first = parts[0]
    for p in parts[1:]:
        for name in (
            "part_count",
            "planned_shards",
            "plan_key",
            "fps",
            "features",
            "camera_keys",
            "source",
            "options",
        ):
            if getattr(p, name) != getattr(first, name):
                raise FinalizeError(
                    f"{where}: part {p.part_index}/{p.part_count} disagrees with part {first.part_index} on "
                    f"{name!r}: {getattr(p, name)!r} vs {getattr(first, name)!r} (parts of different runs?)"
                )
    shards = sorted((s for p in parts for s in p.shards), key=lambda s: s.path)
    paths = [s.path for s in shards]
    if len(paths) != first.planned_shards or len(set(paths)) != len(paths):
        raise FinalizeError(
            f"{where}: parts list {len(set(paths))} distinct shards ({len(paths)} entries), "
            f"the plan has {first.planned_shards}"
        )
    skipped = sorted((s for p in parts for s in p.skipped), key=lambda s: s["episode_index"])
    return Manifest(
        fps=first.fps,
        features=first.features,
        camera_keys=first.camera_keys,
        shards=[s for s in shards if s.episodes],  # a shard whose episodes were all skipped has no tar
        source=first.source,
        options=first.options,
        skipped=skipped,
    )


def finalize(sink: Sink, part_count: int | None = None) -> Manifest:
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
    parts = []
    for i in range(part_count):
        rel = part_path(i, part_count)
        data = sink.read_bytes(rel)
        if data is None:
            raise FinalizeError(f"{sink.url}/{rel}: part manifest disappeared while finalizing")
        parts.append(PartManifest.from_json_bytes(data, where=f"{sink.url}/{rel}"))
    manifest = build_manifest(parts, where=sink.url)
    for s in manifest.shards:
        size = sink.size(s.path)
        if size != s.bytes:
            found = "missing" if size is None else f"{size} bytes"
            raise FinalizeError(f"{sink.url}/{s.path}: expected {s.bytes} bytes, found {found}")
    sink.sweep_partials()  # every part has finished: temp files left by killed runs have no writer
    sink.put_bytes(manifest.to_json_bytes(), MANIFEST_NAME)
    return manifest
