"""Builds converted roots directly per the shard format contract, so reader tests never need the converter.

Each episode's frames are synthesised per camera, encoded with ffmpeg (H.264 with B-frames by default) into
a small faststart MP4, and written with the episode's parquet rows and :class:`EpisodeMeta` JSON into tar
shards; ``manifest.json`` is written last. Frames carry their identity (episode, frame, camera) in
``lerobot_wds.testing.synth_identity``'s checked bit grid, so a test can assert which frame arrived.
``lead_in`` / ``trail`` encode extra frames before and after the episode (identity frame ``-lead_in..-1`` and
``length..``) like a converter that had to start on an earlier keyframe.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lerobot_wds.convert.mp4.index import parse_track_index
from lerobot_wds.convert.mp4.io import bytes_reader
from lerobot_wds.core.format import (
    MANIFEST_NAME,
    CameraMeta,
    EpisodeExtent,
    EpisodeMeta,
    Manifest,
    ShardInfo,
    episode_key,
    shard_path,
    video_suffix,
)
from lerobot_wds.testing import synth_identity

# synth_identity encodes frame ids >= 0: ids are stored +64 so lead-in frames (negative ids) are representable
FRAME_OFFSET = 64
STATE_DIM = 3
ACTION_DIM = 2


@dataclass(frozen=True)
class RootSpec:
    """What to synthesise: episode lengths, cameras, fps, episodes per shard and the mini-MP4 padding."""

    lengths: tuple[int, ...] = (12, 7, 15, 9, 11, 6, 10, 8)
    cameras: tuple[str, ...] = ("observation.images.front", "observation.images.wrist")
    fps: int = 10
    width: int = 64
    height: int = 48
    episodes_per_shard: int = 2
    lead_in: int = 0
    trail: int = 0
    gop: int = 4
    bframes: int = 2
    tasks: tuple[str, ...] = ("pick the cube", "place the cube")
    extra: dict = field(default_factory=dict)


def make_frame(episode: int, frame: int, camera: int, width: int, height: int) -> np.ndarray:
    """Returns one HxWx3 uint8 frame carrying (episode, frame, camera); ``frame`` may be a negative lead-in id."""
    return synth_identity.make_frame(episode, frame + FRAME_OFFSET, camera, width, height)


def read_identity(image: torch.Tensor) -> tuple[int, int, int]:
    """Reads (episode, frame, camera) back from a decoded [C,H,W] frame (uint8 or float in [0,1]).

    Raises:
        synth_identity.IdentityError: the frame does not carry a readable, checked identity.
    """
    episode, stored, camera = synth_identity.read_identity_full(image)
    return episode, stored - FRAME_OFFSET, camera


def encode_mp4(frames: list[np.ndarray], fps: int, *, gop: int, bframes: int) -> bytes:
    """Encodes RGB frames with ffmpeg/libx264 (B-frames, fixed GOP) into faststart MP4 bytes."""
    h, w, _ = frames[0].shape
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "v.mp4"
        cmd = [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{w}x{h}",
            "-r",
            str(fps),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "10",
            "-pix_fmt",
            "yuv420p",
            "-g",
            str(gop),
            "-keyint_min",
            str(gop),
            "-sc_threshold",
            "0",
            "-bf",
            str(bframes),
            "-movflags",
            "+faststart",
            str(out),
        ]
        subprocess.run(cmd, input=b"".join(f.tobytes() for f in frames), check=True)
        return out.read_bytes()


def garble_samples(mp4: bytes) -> bytes:
    """Returns the MP4 with every sample's bytes overwritten by 0xFF, boxes and sample tables intact.

    The file still opens and indexes (frame count, size, timestamps); decoding any frame fails
    ("Invalid data found when processing input"), so the fault surfaces at decode time, not when opening.
    """
    index = parse_track_index(*bytes_reader(mp4), name="garble_samples")
    out = bytearray(mp4)
    for offset, size in zip(index.offsets.tolist(), index.sizes.tolist(), strict=True):
        out[offset : offset + size] = b"\xff" * size
    return bytes(out)


def state_value(episode: int, frame: int) -> list[float]:
    """The synthetic observation.state of a frame (exact in float32)."""
    return [episode * 100.0 + frame + j * 0.25 for j in range(STATE_DIM)]


def task_of(episode: int, spec: RootSpec) -> int:
    return episode % len(spec.tasks)


def episode_rows(episode: int, length: int, start: int, spec: RootSpec) -> pa.Table:
    """Returns an episode's rows with lerobot's columns and dtypes."""
    fl = pa.list_(pa.float32(), STATE_DIM)
    al = pa.list_(pa.float32(), ACTION_DIM)
    return pa.table(
        {
            "observation.state": pa.array([state_value(episode, k) for k in range(length)], type=fl),
            "action": pa.array([[episode - k * 0.5, k * 2.0] for k in range(length)], type=al),
            "timestamp": pa.array([k / spec.fps for k in range(length)], type=pa.float32()),
            "frame_index": pa.array(range(length), type=pa.int64()),
            "episode_index": pa.array([episode] * length, type=pa.int64()),
            "index": pa.array(range(start, start + length), type=pa.int64()),
            "task_index": pa.array([task_of(episode, spec)] * length, type=pa.int64()),
        }
    )


def features(spec: RootSpec) -> dict:
    """Returns lerobot-style ``features`` for the synthetic dataset."""
    feats: dict = {
        cam: {"dtype": "video", "shape": [spec.height, spec.width, 3], "names": ["height", "width", "channels"]}
        for cam in spec.cameras
    }
    feats["observation.state"] = {"dtype": "float32", "shape": [STATE_DIM], "names": None}
    feats["action"] = {"dtype": "float32", "shape": [ACTION_DIM], "names": None}
    for name, dtype in [("timestamp", "float32")] + [
        (c, "int64") for c in ("frame_index", "episode_index", "index", "task_index")
    ]:
        feats[name] = {"dtype": dtype, "shape": [1], "names": None}
    return feats


def _parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def episode_members(episode: int, length: int, start: int, spec: RootSpec) -> list[tuple[str, bytes]]:
    """Returns the (member name, bytes) of one episode sample in contract order."""
    key = episode_key(episode)
    cams: dict[str, CameraMeta] = {}
    videos: list[tuple[str, bytes]] = []
    for ci, cam in enumerate(spec.cameras):
        ids = range(-spec.lead_in, length + spec.trail)
        frames = [make_frame(episode, k, ci, spec.width, spec.height) for k in ids]
        videos.append(
            (f"{key}.{video_suffix(cam)}", encode_mp4(frames, spec.fps, gop=spec.gop, bframes=spec.bframes))
        )
        cams[cam] = CameraMeta(
            codec="h264",
            width=spec.width,
            height=spec.height,
            frames=len(frames),
            lead_in=spec.lead_in,
            trail=spec.trail,
            pts_offset_s=spec.lead_in / spec.fps,
            source_file=f"synthetic/{cam}.mp4",
            source_from_timestamp=0.0,
            source_to_timestamp=length / spec.fps,
        )
    meta = EpisodeMeta(
        episode_index=episode,
        length=length,
        fps=float(spec.fps),
        tasks=[spec.tasks[task_of(episode, spec)]],
        task_index=task_of(episode, spec),
        dataset_from_index=start,
        dataset_to_index=start + length,
        cameras=cams,
    )
    rows = _parquet_bytes(episode_rows(episode, length, start, spec))
    return [(f"{key}.json", meta.to_json_bytes()), (f"{key}.parquet", rows), *videos]


def write_meta(root: Path, spec: RootSpec) -> None:
    """Writes the meta/ copy the reader needs: info.json and tasks.parquet."""
    meta = root / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    info = {
        "codebase_version": "v3.0",
        "fps": spec.fps,
        "features": features(spec),
        "total_episodes": len(spec.lengths),
        "total_frames": sum(spec.lengths),
    }
    (meta / "info.json").write_text(json.dumps(info, indent=1))
    tasks = pa.table({"task": list(spec.tasks), "task_index": pa.array(range(len(spec.tasks)), pa.int64())})
    pq.write_table(tasks, meta / "tasks.parquet")


def make_root(
    root: Path, spec: RootSpec = RootSpec(), *, damage: Callable[[str, bytes], bytes] | None = None
) -> Manifest:
    """Writes a complete converted root (meta, shards, manifest last) and returns its manifest.

    ``damage(member_name, data)`` returns the bytes written for each member (e.g. :func:`garble_samples`
    on one camera's mini-MP4): the manifest's sizes and digests describe the damaged shards, so the fault
    passes every transport and integrity check and shows where the reader parses or decodes that member.
    """
    root = Path(root)
    write_meta(root, spec)
    starts = np.concatenate([[0], np.cumsum(spec.lengths)]).tolist()
    shards: list[ShardInfo] = []
    n = len(spec.lengths)
    for s, first in enumerate(range(0, n, spec.episodes_per_shard)):
        eps = list(range(first, min(n, first + spec.episodes_per_shard)))
        buf = io.BytesIO()
        spans: list[tuple[int, int]] = []  # each episode's members: (offset, end) in the tar
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for ep in eps:
                begin = tar.offset
                for name, data in episode_members(ep, spec.lengths[ep], starts[ep], spec):
                    _add(tar, name, damage(name, data) if damage is not None else data)
                spans.append((begin, tar.offset))
        data = buf.getvalue()
        extents = [
            EpisodeExtent(ep, spec.lengths[ep], lo, hi - lo, hashlib.sha256(data[lo:hi]).hexdigest())
            for ep, (lo, hi) in zip(eps, spans, strict=True)
        ]
        path = root / shard_path(s)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        frames = sum(spec.lengths[e] for e in eps)
        shards.append(ShardInfo(shard_path(s), len(data), hashlib.sha256(data).hexdigest(), eps, frames, extents))
    manifest = Manifest(
        fps=float(spec.fps),
        features=features(spec),
        camera_keys=list(spec.cameras),
        shards=shards,
        source={"path": "synthetic"},
        options={"episodes_per_shard": spec.episodes_per_shard},
    )
    (root / MANIFEST_NAME).write_bytes(manifest.to_json_bytes())
    return manifest
