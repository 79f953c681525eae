"""Checks of one episode sample for ``verify``: member names, episode JSON, parquet rows and mini-MP4 indexes.

Every check returns :class:`Finding` objects instead of raising, so one bad member never hides the next
problem. The optional source comparison (rows, schema and per-camera provenance) and decode parity are
delegated to callables the caller supplies, which keeps this module free of any I/O of its own.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_wds.convert.mp4 import Mp4Error, TrackIndex, bytes_reader, parse_track_index
from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import (
    EpisodeMeta,
    episode_index_from_key,
    member_violations,
    meta_violations,
    row_violations,
    video_suffix,
)
from lerobot_wds.tools.report import Finding
from lerobot_wds.tools.verify.tar import Sample

# (shard, meta, rows, members by suffix) -> findings; set when --source / --decode ask for more checks
SampleHook = Callable[[str, EpisodeMeta, pa.Table, dict[str, bytes]], list[Finding]]


@dataclass(frozen=True)
class SampleResult:
    """What a sample check found, the episode index (None if the key is bad) and its frame count."""

    findings: list[Finding]
    episode: int | None
    frames: int


def check_sample(
    shard: str, sample: Sample, *, fps: float, camera_keys: list[str], hooks: tuple[SampleHook, ...] = ()
) -> SampleResult:
    """Checks one sample's members and contents; never raises on bad data.

    Args:
        shard: The shard's path relative to the root (for findings).
        sample: The sample's members as read from the tar.
        fps: The manifest's fps, which the episode JSON must repeat.
        camera_keys: The manifest's cameras: exactly one ``<key>.<camera>.mp4`` each is required.
        hooks: Extra checks run when the sample's JSON and rows are readable (source rows, decode parity).
    """
    out: list[Finding] = []
    try:
        episode = episode_index_from_key(sample.key)
    except FormatError as e:
        names = ", ".join(m.name for m in sample.members)
        out.append(Finding("member-name", f"{e} (members {names})", shard=shard))
        return SampleResult(out, None, 0)

    def finding(check: str, message: str, *, camera: str | None = None, member: str | None = None) -> None:
        out.append(Finding(check, message, shard=shard, episode=episode, camera=camera, member=member))

    data: dict[str, bytes] = {}
    regular = []
    for m in sample.members:
        if not m.regular:
            finding("extra-member", "not a regular file", member=m.name)
            continue
        regular.append(m.suffix)
        data[m.suffix] = m.data  # of duplicates, the last (as a tar extraction would leave it)
    for v in member_violations(sample.key, regular, camera_keys):
        finding(v.check, v.message, camera=v.camera, member=v.member)

    meta = _check_json(data.get("json"), f"{sample.key}.json", episode, fps, camera_keys, finding)
    rows = _check_rows(data.get("parquet"), f"{sample.key}.parquet", episode, meta, finding)
    if meta is not None:
        for cam in camera_keys:
            member = f"{sample.key}.{video_suffix(cam)}"
            if video_suffix(cam) in data and cam in meta.cameras:
                _check_video(data[video_suffix(cam)], member, cam, meta, finding)
    if meta is not None and rows is not None:
        for hook in hooks:
            out.extend(hook(shard, meta, rows, data))
    frames = meta.length if meta is not None else (rows.num_rows if rows is not None else 0)
    return SampleResult(out, episode, frames)


def _check_json(data, member, episode, fps, camera_keys, finding) -> EpisodeMeta | None:
    if data is None:
        return None
    try:
        meta = EpisodeMeta.from_json_bytes(data, where=member)
    except FormatError as e:
        finding("json", str(e), member=member)
        return None
    for v in meta_violations(meta, episode=episode, fps=fps, camera_keys=camera_keys, member=member):
        finding(v.check, v.message, camera=v.camera, member=v.member)
    return meta


def _check_rows(data, member, episode, meta, finding) -> pa.Table | None:
    if data is None:
        return None
    try:
        rows = pq.read_table(io.BytesIO(data))
        _ = rows.column_names  # decoded lazily: a corrupt name raises UnicodeDecodeError (a ValueError)
    except (pa.ArrowException, OSError, ValueError) as e:
        finding("parquet", f"not a readable parquet file: {e}", member=member)
        return None
    if meta is not None:
        for v in row_violations(meta, rows.num_rows, _int_columns(rows), member):
            finding(v.check, v.message, camera=v.camera, member=v.member)
    return rows


def _int_columns(rows: pa.Table) -> dict[str, np.ndarray | None]:
    """The integer columns of ``rows`` as numpy arrays (None for any other column), for the row contract."""
    out: dict[str, np.ndarray | None] = {}
    for name in rows.column_names:
        column = rows.column(name)
        ok = pa.types.is_integer(column.type) and column.null_count == 0
        out[name] = column.to_numpy().astype(np.int64) if ok else None
    return out


def _check_video(data: bytes, member: str, cam: str, meta: EpisodeMeta, finding) -> TrackIndex | None:
    cm = meta.cameras[cam]
    read, size = bytes_reader(data)
    try:
        index = parse_track_index(read, size, name=member)
    except Mp4Error as e:
        finding("mp4", str(e), camera=cam, member=member)
        return None
    if index.sample_count != cm.frames:
        finding(
            "camera-frames",
            f"mini-MP4 holds {index.sample_count} frames, episode JSON says {cm.frames}",
            camera=cam,
            member=member,
        )
    found = (index.codec, index.width, index.height)
    if found != (cm.codec, cm.width, cm.height):
        finding(
            "mp4",
            f"mini-MP4 is {found[0]} {found[1]}x{found[2]}, episode JSON says {cm.codec} {cm.width}x{cm.height}",
            camera=cam,
            member=member,
        )
    if not bool(index.keyframes[0]):
        finding("mp4", "mini-MP4 does not start on a keyframe", camera=cam, member=member)
    return index
