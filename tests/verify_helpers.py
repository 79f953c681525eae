"""Helpers for verify/inspect tests: damage a converted root in controlled ways, or break a source episode."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_wds.core.format import EpisodeExtent, Manifest, ShardInfo

Members = list[tuple[str, bytes]]


def read_manifest(root: Path) -> Manifest:
    return Manifest.from_json_bytes((Path(root) / "manifest.json").read_bytes())


def read_members(path: Path) -> Members:
    """Returns a tar's ``(name, data)`` members in order."""
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def write_members(path: Path, members: Members) -> None:
    """Writes ``(name, data)`` members as a PAX tar, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def _consistent_extents(path: Path, info: ShardInfo) -> list[EpisodeExtent]:
    """Extents that agree with a rewritten tar: contiguous from byte 0, in the shard's episode order, episode
    ``i`` ending after its last member (or where episode ``i - 1`` ended), each with the digest of its bytes."""
    ends: dict[int, int] = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            key = m.name.split(".")[0]
            if key.startswith("episode_") and key[len("episode_") :].isdigit():
                ends[int(key[len("episode_") :])] = m.offset_data + -(-m.size // 512) * 512
    data = path.read_bytes()
    out, start = [], 0
    for ext in info.extents:
        end = max(start, ends.get(ext.episode, start))
        out.append(
            replace(ext, offset=start, length=end - start, sha256=hashlib.sha256(data[start:end]).hexdigest())
        )
        start = end
    return out


def rewrite_shard(root: Path, shard: str, edit: Callable[[Members], Members], *, fix_manifest: bool) -> None:
    """Rewrites a shard's members through ``edit``; optionally re-records its size, sha256 and extents.

    The re-recorded entry describes the rewritten bytes (extents contiguous, digests matching): the members are
    no longer where the converter put them, and a consistent converter bug is what the other checks must find.
    """
    path = Path(root) / shard
    write_members(path, edit(read_members(path)))
    if fix_manifest:
        m = read_manifest(root)
        data = path.read_bytes()
        fixed = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        shards = [
            replace(s, **fixed, extents=_consistent_extents(path, s)) if s.path == shard else s for s in m.shards
        ]
        (Path(root) / "manifest.json").write_bytes(replace(m, shards=shards).to_json_bytes())


def shift_video_start(root: Path, episode: int, camera: str, seconds: float) -> None:
    """Shifts one episode's ``from_timestamp`` of one camera in a source's meta/episodes (breaks that episode)."""
    col = f"videos/{camera}/from_timestamp"
    for p in (Path(root) / "meta" / "episodes").rglob("*.parquet"):
        t = pq.read_table(p)
        eps = t.column("episode_index").to_pylist()
        vals = [v + seconds if e == episode else v for v, e in zip(t.column(col).to_pylist(), eps, strict=True)]
        t = t.set_column(t.schema.get_field_index(col), col, pa.array(vals, t.schema.field(col).type))
        pq.write_table(t, p)
