"""The shard format contract: member names, episode metadata and the manifest.

Versions: the manifest is version 2 (each shard lists its episodes' byte extents and digests, so readers can
plan by episode and fetch byte ranges). Version 1 manifests (no extents) were written only by early versions of
this project; reading one raises a FormatError asking to re-convert. The episode JSON is version 1.

The converter writes exactly this and the reader trusts exactly this, so it lives in the core package that
both import (they never import each other).

Layout of a converted root::

    <root>/meta/...                   copy of the source meta (info.json, stats.json, tasks.parquet, episodes/)
    <root>/shards/shard-000000.tar    one tar sample per episode
    <root>/manifest.json              written last; the only thing a reader trusts

Members of one sample, key ``episode_000123`` (no dots: webdataset splits the suffix at the first dot):
``<key>.json`` (:class:`EpisodeMeta`), ``<key>.parquet`` (the episode's rows, schema unchanged) and
``<key>.<camera_key>.mp4`` per camera (a faststart mini-MP4 whose samples were copied from the source).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.json_fields import type_problem

FORMAT_NAME = "lerobot-wds"
FORMAT_VERSION = 2  # the manifest's
EPISODE_FORMAT_VERSION = 1  # <key>.json
MANIFEST_NAME = "manifest.json"
SHARDS_DIR = "shards"
META_DIR = "meta"


def episode_key(episode_index: int) -> str:
    """Returns the tar sample key of an episode, e.g. ``episode_000123``."""
    if episode_index < 0:
        raise FormatError(f"episode_index must be >= 0, got {episode_index}")
    return f"episode_{episode_index:06d}"


def episode_index_from_key(key: str) -> int:
    """Parses ``episode_000123`` back to 123; raises FormatError naming the key otherwise."""
    prefix = "episode_"
    if not key.startswith(prefix) or not key[len(prefix) :].isdigit():
        raise FormatError(f"sample key {key!r} is not of the form 'episode_NNNNNN'")
    return int(key[len(prefix) :])


def shard_path(shard_index: int) -> str:
    """Returns a shard's path relative to the root, e.g. ``shards/shard-000000.tar``."""
    return f"{SHARDS_DIR}/shard-{shard_index:06d}.tar"


def video_suffix(camera_key: str) -> str:
    """Returns the member suffix of a camera's mini-MP4, e.g. ``observation.images.front.mp4``."""
    return f"{camera_key}.mp4"


def member_names(episode_index: int, camera_keys: list[str] | tuple[str, ...]) -> list[str]:
    """Returns the member names of one episode sample in the order they are written."""
    key = episode_key(episode_index)
    return [f"{key}.json", f"{key}.parquet"] + [f"{key}.{video_suffix(c)}" for c in camera_keys]


@dataclass(frozen=True)
class CameraMeta:
    """How one camera's mini-MP4 maps onto the episode timeline.

    The mini-MP4 holds ``frames`` frames in presentation order: ``lead_in`` frames before the episode's
    first frame (copied so decoding can start on a keyframe), then the episode's ``length`` frames, then
    ``trail`` frames a B-frame codec needed to decode the last ones. Episode frame ``k`` is mini-MP4 frame
    ``lead_in + k`` and is presented at ``pts_offset_s + k / fps`` seconds (within half a frame).
    """

    codec: str
    width: int
    height: int
    frames: int
    lead_in: int
    trail: int
    pts_offset_s: float
    source_file: str
    source_from_timestamp: float
    source_to_timestamp: float

    def frame_position(self, frame_index: int) -> int:
        """Returns the mini-MP4 presentation index of episode frame ``frame_index``."""
        return self.lead_in + frame_index


@dataclass(frozen=True)
class EpisodeMeta:
    """Contents of ``<key>.json``: everything a reader needs about one episode besides its rows."""

    episode_index: int
    length: int
    fps: float
    tasks: list[str]
    task_index: int
    dataset_from_index: int
    dataset_to_index: int
    cameras: dict[str, CameraMeta]
    format_version: int = EPISODE_FORMAT_VERSION

    def to_json_bytes(self) -> bytes:
        """Serialises deterministically (sorted keys) for byte-identical shards."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json_bytes(cls, data: bytes, *, where: str = "<episode json>") -> EpisodeMeta:
        """Parses ``<key>.json``; raises FormatError naming ``where`` when a field is missing or wrong."""
        try:
            raw = json.loads(data)
            if raw.get("format_version") != EPISODE_FORMAT_VERSION:
                raise FormatError(
                    f"{where}: format_version {raw.get('format_version')!r}, expected {EPISODE_FORMAT_VERSION}"
                )
            cams = {k: CameraMeta(**v) for k, v in raw.pop("cameras").items()}
            meta = cls(cameras=cams, **raw)
        except FormatError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise FormatError(f"{where}: not a valid episode metadata JSON: {e}") from e
        _check_fields(meta, where)
        return meta


@dataclass(frozen=True)
class EpisodeExtent:
    """Where one episode sample lies inside its shard: its members' bytes (headers included), contiguous.

    ``offset``/``length`` cover the tar headers, data and padding of the sample's members; ``sha256`` is the
    digest of exactly those bytes, so a ranged read of one episode is checked on its own.
    """

    episode: int
    frames: int
    offset: int
    length: int
    sha256: str


@dataclass(frozen=True)
class ShardInfo:
    """One manifest entry: a shard's relative path, size, sha256, episodes, frame count and their extents."""

    path: str
    bytes: int
    sha256: str
    episodes: list[int]
    frames: int
    extents: list[EpisodeExtent]

    def __post_init__(self) -> None:
        fixed = [e if isinstance(e, EpisodeExtent) else EpisodeExtent(**e) for e in self.extents]
        object.__setattr__(self, "extents", fixed)
        if [e.episode for e in fixed] != list(self.episodes):
            raise FormatError(
                f"shard {self.path}: extents list episodes {[e.episode for e in fixed]}, "
                f"the shard lists {self.episodes}"
            )


@dataclass(frozen=True)
class Manifest:
    """Contents of ``manifest.json``; written last by the converter, the only thing a reader trusts."""

    fps: float
    features: dict[str, Any]
    camera_keys: list[str]
    shards: list[ShardInfo]
    source: dict[str, Any]
    options: dict[str, Any]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    @property
    def total_episodes(self) -> int:
        return sum(len(s.episodes) for s in self.shards)

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.shards)

    @property
    def total_bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def to_json_bytes(self) -> bytes:
        """Serialises deterministically, with totals, for byte-identical output."""
        totals = ManifestTotals(len(self.shards), self.total_episodes, self.total_frames, self.total_bytes)
        return b"".join(manifest_json_chunks(self, (shard_json(s) for s in self.shards), totals))

    @classmethod
    def from_json_bytes(cls, data: bytes, *, where: str = MANIFEST_NAME) -> Manifest:
        """Parses a manifest; raises FormatError naming ``where`` on a wrong format, version or field."""
        try:
            raw = json.loads(data)
        except ValueError as e:
            raise FormatError(f"{where}: not JSON: {e}") from e
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise FormatError(f"{where}: format {found!r}, expected {FORMAT_NAME!r}")
        if raw.get("format_version") == 1:
            raise FormatError(
                f"{where}: format_version 1 (no per-episode extents) was written by an early lerobot-wds version "
                f"this reader no longer reads; re-convert the source with this version (format_version "
                f"{FORMAT_VERSION})"
            )
        if raw.get("format_version") != FORMAT_VERSION:
            raise FormatError(f"{where}: format_version {raw.get('format_version')!r}, expected {FORMAT_VERSION}")
        raw.pop("totals", None)
        try:
            shards = [ShardInfo(**s) for s in raw.pop("shards")]
            manifest = cls(shards=shards, **raw)
        except FormatError as e:
            raise FormatError(f"{where}: {e}") from e
        except (TypeError, KeyError, AttributeError) as e:
            raise FormatError(f"{where}: missing or unexpected field: {e}") from e
        _check_fields(manifest, where)
        return manifest


@dataclass(frozen=True)
class ManifestTotals:
    """The manifest's ``totals`` entry."""

    shards: int
    episodes: int
    frames: int
    bytes: int


# Stands for the shards list while the rest of the manifest is serialised (JSON escapes the NULs, so no other
# string of the manifest serialises to it).
_SHARDS_HOLE = "\x00shards\x00"


def shard_json(shard: ShardInfo) -> bytes:
    """One shard's entry exactly as ``manifest.json`` holds it (indented for its place in the shards list)."""
    return json.dumps(asdict(shard), sort_keys=True, indent=1).replace("\n", "\n  ").encode()


def manifest_json_chunks(head: Manifest, shards: Iterable[bytes], totals: ManifestTotals) -> Iterator[bytes]:
    """Yields ``manifest.json``'s bytes: ``head``'s fields (its own shards ignored), the ``shards`` entries in
    order (from :func:`shard_json`) and ``totals``, so a manifest of any size is written without holding it."""
    d = asdict(replace(head, shards=[]))
    d["shards"] = _SHARDS_HOLE
    d["totals"] = asdict(totals)
    before, after = json.dumps(d, sort_keys=True, indent=1).split(json.dumps(_SHARDS_HOLE))
    yield before.encode()
    empty = True
    for i, entry in enumerate(shards):
        yield (b",\n  " if i else b"[\n  ") + entry
        empty = False
    yield b"[]" if empty else b"\n ]"
    yield (after + "\n").encode()


def _check_fields(obj: EpisodeMeta | Manifest, where: str) -> None:
    """Raises FormatError naming ``where`` and the field unless every field holds its type and fps is > 0."""
    problem = type_problem(obj)
    if problem is None and not obj.fps > 0:
        problem = f"field fps should be > 0, found {obj.fps!r}"
    if problem is not None:
        raise FormatError(f"{where}: {problem}")


# -- the episode contract: written once; the reader raises the first violation, verify reports them all ----


@dataclass(frozen=True)
class Violation:
    """One breach of the episode contract: the check's name, what was expected and found, and where."""

    check: str
    message: str
    camera: str | None = None
    member: str | None = None


def member_violations(key: str, suffixes: Sequence[str], camera_keys: Sequence[str]) -> Iterator[Violation]:
    """A sample holds exactly one ``json``, one ``parquet`` and one ``<camera>.mp4`` per camera, nothing else."""
    wanted: dict[str, str | None] = {"json": None, "parquet": None, **{video_suffix(c): c for c in camera_keys}}
    counts = Counter(suffixes)
    for suffix, n in counts.items():
        if suffix not in wanted:
            message = f"unexpected suffix {suffix!r}; expected one of {sorted(wanted)}"
            yield Violation("extra-member", message, member=f"{key}.{suffix}")
        elif n > 1:
            yield Violation("duplicate-member", f"appears {n} times in the sample", member=f"{key}.{suffix}")
    for suffix, camera in wanted.items():
        if suffix not in counts:
            yield Violation("missing-member", "required member is absent", camera, f"{key}.{suffix}")


def meta_violations(
    meta: EpisodeMeta, *, episode: int, fps: float | None, camera_keys: Sequence[str], member: str
) -> Iterator[Violation]:
    """``<key>.json`` agrees with its key, the manifest (fps, cameras) and itself (index range, frame counts)."""
    if meta.episode_index != episode:
        yield Violation(
            "json", f"episode_index {meta.episode_index}, expected {episode} from the key", None, member
        )
    if fps is not None and meta.fps != fps:
        yield Violation("json", f"fps {meta.fps}, manifest says {fps}", None, member)
    if meta.length < 1 or meta.dataset_to_index - meta.dataset_from_index != meta.length:
        message = f"dataset index range [{meta.dataset_from_index}, {meta.dataset_to_index}) does not hold length "
        yield Violation("json", f"{message}{meta.length}", None, member)
    if sorted(meta.cameras) != sorted(camera_keys):
        yield Violation(
            "json", f"cameras {sorted(meta.cameras)}, manifest says {sorted(camera_keys)}", None, member
        )
    for cam, cm in meta.cameras.items():
        if cm.frames != cm.lead_in + meta.length + cm.trail or min(cm.lead_in, cm.trail) < 0:
            message = f"frames {cm.frames} != lead_in {cm.lead_in} + length {meta.length} + trail {cm.trail}"
            yield Violation("camera-frames", message, cam, member)


# the row columns the contract fixes: name -> expected values from (meta, number of rows)
_ROW_COLUMNS = ("frame_index", "episode_index", "index")


def row_violations(
    meta: EpisodeMeta, num_rows: int, columns: Mapping[str, np.ndarray | None], member: str
) -> Iterator[Violation]:
    """``<key>.parquet`` holds ``length`` rows whose ``frame_index``, ``episode_index`` and ``index`` columns
    run exactly as the episode JSON says. ``columns`` maps each of those names to its integer values, or None
    when the column is absent or not integers."""
    if num_rows != meta.length:
        yield Violation("length", f"{num_rows} rows, episode JSON says length {meta.length}", None, member)
    expected = {
        "frame_index": np.arange(num_rows),
        "episode_index": np.full(num_rows, meta.episode_index),
        "index": np.arange(meta.dataset_from_index, meta.dataset_from_index + num_rows),
    }
    for name in _ROW_COLUMNS:
        got, want = columns.get(name), expected[name]
        if got is None or got.shape != want.shape or not np.array_equal(got, want):
            shown = "absent or not integers" if got is None else f"{got[:5].tolist()}..."
            message = f"column {name!r} should be {want[:5].tolist()}... ({num_rows} rows), found {shown}"
            yield Violation("parquet", message, None, member)
