"""Helpers for converter tests: read a converted root's bytes and shards, decode mini-MP4 identities."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import av
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_wds.core.format import EpisodeMeta, Manifest
from lerobot_wds.testing.synth_identity import read_identity_full

OUTPUT_PARTS = ("meta", "shards", "manifest.json")


def output_bytes(root: Path) -> dict[str, bytes]:
    """Returns ``{relative path: bytes}`` of the published output (meta/, shards/, manifest.json)."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel.split("/")[0] in OUTPUT_PARTS:
            out[rel] = p.read_bytes()
    return out


def s3_output_bytes(fs: Any, prefix: str) -> dict[str, bytes]:
    """Same as :func:`output_bytes` for an s3fs prefix ``bucket/path``."""
    fs.invalidate_cache()
    out = {}
    for full in sorted(fs.find(prefix)):
        rel = full[len(prefix) + 1 :]
        if rel.split("/")[0] in OUTPUT_PARTS:
            out[rel] = fs.cat_file(full)
    return out


def all_bytes(root: Path) -> dict[str, bytes]:
    """Returns ``{relative path: bytes}`` of every file under ``root``: bookkeeping and temp files included."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def s3_all_bytes(fs: Any, prefix: str) -> dict[str, bytes]:
    """Same as :func:`all_bytes` for an s3fs prefix ``bucket/path``."""
    fs.invalidate_cache()
    return {full[len(prefix) + 1 :]: fs.cat_file(full) for full in sorted(fs.find(prefix))}


def read_manifest(root: Path) -> Manifest:
    return Manifest.from_json_bytes((Path(root) / "manifest.json").read_bytes())


def read_tar(data: bytes) -> list[tuple[str, bytes, tarfile.TarInfo]]:
    """Returns the members of a tar in order with their data and header."""
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            out.append((m.name, f.read() if f else b"", m))
    return out


def decode_identities(mp4: bytes) -> list[tuple[int, int, int]]:
    """Decodes every frame of an MP4 (presentation order) to its (episode, frame, camera) identity."""
    with av.open(io.BytesIO(mp4)) as container:
        return [read_identity_full(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def source_rows(fixture: Any, episode: int) -> pa.Table:
    """The episode's rows read straight from the fixture's data parquet."""
    info = fixture.episodes[episode]
    table = pq.read_table(info.data_path)
    return table.filter(pc.equal(table.column("episode_index"), episode))


def check_episode_sample(fixture: Any, members: dict[str, bytes], episode: int) -> EpisodeMeta:
    """Asserts one converted sample matches the source exactly: rows, meta and every decoded frame."""
    key = f"episode_{episode:06d}"
    meta = EpisodeMeta.from_json_bytes(members[f"{key}.json"])
    info = fixture.episodes[episode]
    assert meta.episode_index == episode and meta.length == info.length
    assert meta.tasks == [info.task] and meta.task_index == info.task_index
    assert (meta.dataset_from_index, meta.dataset_to_index) == (info.dataset_from_index, info.dataset_to_index)
    rows = pq.read_table(io.BytesIO(members[f"{key}.parquet"]))
    expected = source_rows(fixture, episode)
    assert rows.schema.equals(expected.schema, check_metadata=True)
    assert rows.equals(expected)
    for cam_idx, cam in enumerate(c.key for c in fixture.spec.cameras):
        ids = decode_identities(members[f"{key}.{cam}.mp4"])
        cm = meta.cameras[cam]
        assert len(ids) == cm.frames
        episode_ids = ids[cm.lead_in : cm.lead_in + info.length]
        assert episode_ids == [(episode, k, cam_idx) for k in range(info.length)], (cam, ids)
    return meta


def shard_samples(data: bytes) -> dict[int, dict[str, bytes]]:
    """Groups a shard's members by episode index (asserting samples are contiguous and in order)."""
    out: dict[int, dict[str, bytes]] = {}
    order: list[int] = []
    for name, blob, _ in read_tar(data):
        ep = int(name.split(".")[0].removeprefix("episode_"))
        if not order or order[-1] != ep:
            assert ep not in out, f"sample {ep} is not contiguous"
            order.append(ep)
        out.setdefault(ep, {})[name] = blob
    return out


def manifest_json(root: Path) -> dict[str, Any]:
    return json.loads((Path(root) / "manifest.json").read_bytes())
