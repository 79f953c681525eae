"""The decode-only ceiling of a conversion: every frame of every mini-MP4 decoded sequentially, nothing else.

What a loader of single frames could reach at best on these cores with this decoder: torchcodec (the reader's
decoder, one FFmpeg thread per process), RGB uint8 frames, one process per core, each decoding whole shards
front to back (tar read from local disk, no integrity check, no batching, no copies). The frames of each
camera file are checked against the episode metadata before they count, so a broken conversion cannot post a
high number. Single-mode frames/s of a loader divided by this is the share of the ceiling it reaches.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from lerobot_wds.core.format import MANIFEST_NAME, Manifest, episode_key
from lerobot_wds.tools.bench.scenarios import BenchConfig
from lerobot_wds.tools.errors import BenchError

CHUNK = 32  # frames per get_frames_in_range call: sequential decoding with a bounded batch in memory


def decode_episode(path: str, episode: int, cameras: tuple[str, ...]) -> tuple[int, int]:
    """Decodes every camera file of one episode of a shard sequentially; returns (frames decoded, camera files).

    Episodes (not shards) are the unit of work so that a few large shards still keep every process busy.
    """
    import torch
    from torchcodec.decoders import VideoDecoder

    torch.set_num_threads(1)
    frames = files = 0
    with tarfile.open(path) as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        key = episode_key(episode)
        meta = json.loads(_member(tar, members.get(f"{key}.json"), path))
        for cam in cameras:
            data = _member(tar, members.get(f"{key}.{cam}.mp4"), path)
            decoder = VideoDecoder(data, seek_mode="exact", num_ffmpeg_threads=1, dimension_order="NHWC")
            total = decoder.metadata.num_frames or 0
            want = int(meta["cameras"][cam]["frames"])  # the mini-MP4's frames, lead-in and trail included
            if total != want:
                raise BenchError(f"{path}, {key}, camera {cam}: MP4 has {total} frames, metadata says {want}")
            for start in range(0, total, CHUNK):
                batch = decoder.get_frames_in_range(start, min(total, start + CHUNK)).data
                if batch.dtype != torch.uint8 or batch.shape[-1] != 3:
                    raise BenchError(f"{path}, {key}, camera {cam}: decoded {batch.dtype} {tuple(batch.shape)}")
                frames += batch.shape[0]
            files += 1
    return frames, files


def _warm(_: int) -> None:
    """Imports the decoder in a pool worker, so the timed decode excludes process start-up."""
    import torch
    import torchcodec.decoders  # noqa: F401

    torch.set_num_threads(1)
    time.sleep(0.5)  # holds this worker so the other warm-up tasks land on the other workers


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo | None, path: str) -> bytes:
    f = tar.extractfile(member) if member is not None else None
    if f is None:
        raise BenchError(f"{path}: a member the episode metadata names is missing")
    return f.read()


def run_ceiling(root: str, processes: int | None = None) -> dict[str, Any]:
    """Decodes the whole local conversion ``root`` with ``processes`` (default: every core); returns a record part.

    Raises:
        BenchError: ``root`` is not a local converted root, or a camera file's frames disagree with its metadata.
    """
    manifest_path = Path(root) / MANIFEST_NAME
    if not manifest_path.is_file():
        raise BenchError(f"--ceiling: {manifest_path} not found; the ceiling needs a local converted root")
    manifest = Manifest.from_json_bytes(manifest_path.read_bytes(), where=str(manifest_path))
    procs = processes or os.cpu_count() or 1
    cameras = tuple(manifest.camera_keys)
    tasks = [(str(Path(root) / s.path), e) for s in manifest.shards for e in s.episodes]
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_warm, range(procs)))
        t0 = time.perf_counter()
        paths, episodes = [t[0] for t in tasks], [t[1] for t in tasks]
        results = list(pool.map(decode_episode, paths, episodes, [cameras] * len(tasks)))
        seconds = time.perf_counter() - t0
    frames = sum(r[0] for r in results)
    return {
        "frames": frames,
        "camera_files": sum(r[1] for r in results),
        "processes": procs,
        "measure_s": seconds,
        "frames_per_s_node": frames / seconds,
    }


def ceiling_record(config: BenchConfig, root: str, processes: int | None = None) -> dict[str, Any]:
    """A benchmark record of the ceiling of ``root``, paired with ``config``'s single-mode scenario.

    It carries ``config``'s batch size and workers so that reports set it next to the single-mode runs of the
    same scenario (the ceiling itself uses every core: ``processes``).
    """
    result = run_ceiling(root, processes)
    return {
        "record_version": 1,
        "created_unix": time.time(),
        "loader": "decode-ceiling",
        "batching": "none",
        "mode": "single",
        "source_label": config.source_label,
        "batch_size": config.batch_size,
        "num_workers": config.num_workers,
        "return_uint8": True,
        "status": "ok",
        "rank": 0,
        "world_size": 1,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_avg_1m": {"end": os.getloadavg()[0]},
        "samples_per_s": result["frames_per_s_node"],
        **result,
    }
