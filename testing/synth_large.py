"""Builds LeRobot v3.0 sources of 10^4-10^5 episodes in lerobot 0.6.1's layout, in seconds, for scale tests.

``make_dataset`` (:mod:`lerobot_wds.testing.synth`) runs ffmpeg per episode, which is what lerobot does but takes
hours at 10^5 episodes. Here each camera is encoded once (one clip of the longest episode, identity-coded as
episode 0 of that camera) and every episode's video is a prefix of that clip: its samples are copied into the
camera's concatenated files (:func:`lerobot_wds.convert.mp4.write_mp4`, no re-encoding), so each episode starts
on a keyframe and ``from/to_timestamp`` are cumulative ``length / fps`` as lerobot writes them. Rows, the
episode table, tasks, stats and info use the same writers as ``make_dataset`` (one row group per episode;
data files hold ``episodes_per_data_file`` episodes each).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_wds.convert.mp4 import SampleTable, bytes_reader, parse_track_index, write_mp4
from lerobot_wds.testing.synth_identity import make_frame
from lerobot_wds.testing.synth_layout import (
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    DataFileWriter,
    data_schema,
    feature_stats,
    image_stats,
    stats_to_json,
    write_episodes_file,
    write_info,
    write_json,
    write_tasks,
)
from lerobot_wds.testing.synth_spec import DEFAULT_TASKS, CameraSpec, expected_state
from lerobot_wds.testing.synth_video import FixtureVideoError, default_settings, encode_frames, video_stream_info

# The benchmark shape: 2 cameras of 96x128 (height x width).
LARGE_CAMS = (CameraSpec("observation.images.front", 128, 96), CameraSpec("observation.images.wrist", 128, 96))


@dataclass(frozen=True)
class LargeSourceSpec:
    """What large source to build; validated before anything is written.

    Attributes:
        episodes: number of episodes.
        cameras: the cameras (AV1 needs frames of at least 64x64).
        min_frames / max_frames: episode lengths run deterministically over this range (inclusive).
        episodes_per_data_file: episodes per ``data/*.parquet`` file (one row group each).
        episodes_per_video_file: episodes per camera MP4 (None: as many as a data file).
        episodes_per_meta_file: episodes per ``meta/episodes/*.parquet`` file.
        fps: integer frame rate.
        chunks_size: files per chunk directory.
    """

    episodes: int
    cameras: tuple[CameraSpec, ...] = LARGE_CAMS
    min_frames: int = 20
    max_frames: int = 40
    episodes_per_data_file: int = 1000
    episodes_per_video_file: int | None = None
    episodes_per_meta_file: int = 10_000
    fps: int = 10
    chunks_size: int = 1000

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if not 1 <= self.min_frames <= self.max_frames:
            raise ValueError(f"need 1 <= min_frames <= max_frames, got {self.min_frames}..{self.max_frames}")
        if not self.cameras or min(min(c.width, c.height) for c in self.cameras) < 64:
            raise ValueError(f"need 1+ cameras of at least 64x64 (AV1), got {self.cameras}")
        for name in ("episodes_per_data_file", "episodes_per_meta_file", "fps", "chunks_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.episodes_per_video_file is not None and self.episodes_per_video_file < 1:
            raise ValueError(f"episodes_per_video_file must be >= 1 or None, got {self.episodes_per_video_file}")

    def length(self, episode: int) -> int:
        """Frames of ``episode``: spread over min..max_frames by a fixed stride (pure)."""
        span = self.max_frames - self.min_frames + 1
        return self.min_frames + (episode * 7919) % span

    def file_of(self, episode: int, per_file: int) -> tuple[int, int]:
        """(chunk, file) of the ``episode // per_file``-th file, as lerobot numbers files."""
        n = episode // per_file
        return n // self.chunks_size, n % self.chunks_size


@dataclass(frozen=True)
class _Template:
    """One camera's encoded clip: its sample table and each sample's bytes."""

    table: SampleTable
    samples: tuple[bytes, ...]
    info: dict[str, Any]
    stats: dict[str, np.ndarray]


def _template(spec: LargeSourceSpec, cam_index: int, cam: CameraSpec, tmp: Path) -> _Template:
    frames = np.stack([make_frame(0, k, cam_index, cam.width, cam.height) for k in range(spec.max_frames)])
    settings = default_settings("av1")
    path = encode_frames(frames, tmp / f"{cam.key}.mp4", fps=spec.fps, settings=settings)
    data = path.read_bytes()
    read, size = bytes_reader(data)
    idx = parse_track_index(read, size, name=str(path))
    if idx.sample_count != spec.max_frames or np.any(idx.durations != idx.durations[0]):
        raise FixtureVideoError(f"{path}: expected {spec.max_frames} samples of equal duration from ffmpeg")
    if idx.durations[0] * spec.fps != idx.timescale or not idx.keyframes[0]:
        raise FixtureVideoError(
            f"{path}: sample duration {idx.durations[0]}/{idx.timescale} s is not 1/{spec.fps} s"
        )
    table = SampleTable(
        idx.stsd, idx.timescale, idx.width, idx.height, idx.durations, idx.cts, idx.keyframes, idx.sizes
    )
    samples = tuple(data[int(o) : int(o) + int(n)] for o, n in zip(idx.offsets, idx.sizes, strict=True))
    info = {
        **video_stream_info(path),
        "video.g": settings.gop,
        "video.crf": settings.crf,
        "video.preset": int(settings.preset),
        "video.fast_decode": 0,
        "video.video_backend": "pyav",
        "video.extra_options": {},
        "is_depth_map": False,
    }
    return _Template(table, samples, info, image_stats(frames))


def _write_video(tpl: _Template, lengths: list[int], path: Path) -> None:
    """Writes one camera file holding each episode's prefix of the template, in order."""
    t = tpl.table
    pick = np.concatenate([np.arange(n) for n in lengths])
    table = SampleTable(
        t.stsd, t.timescale, t.width, t.height, t.durations[pick], t.cts[pick], t.keyframes[pick], t.sizes[pick]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(write_mp4(table, b"".join(tpl.samples[k] for k in pick), where=str(path)))


def _features(spec: LargeSourceSpec, templates: list[_Template]) -> dict[str, Any]:
    features: dict[str, Any] = {
        c.key: {
            "dtype": "video",
            "shape": [c.height, c.width, 3],
            "names": ["height", "width", "channels"],
            "info": tpl.info,
        }
        for c, tpl in zip(spec.cameras, templates, strict=True)
    }
    features["observation.state"] = {"dtype": "float32", "shape": [3], "names": ["s0", "s1", "s2"]}
    features["action"] = {"dtype": "float32", "shape": [2], "names": ["a0", "a1"]}
    features.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
    return features


def make_large_source(spec: LargeSourceSpec, root: Path) -> Path:
    """Writes the source ``spec`` describes at ``root`` (must not exist or be empty); returns ``root``."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"source root {root} exists and is not empty")
    with tempfile.TemporaryDirectory(prefix="lerobot_large_") as tmp:
        templates = [_template(spec, i, c, Path(tmp)) for i, c in enumerate(spec.cameras)]
    features = _features(spec, templates)
    lengths = [spec.length(e) for e in range(spec.episodes)]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    per_video = spec.episodes_per_video_file or spec.episodes_per_data_file

    for cam, tpl in zip(spec.cameras, templates, strict=True):
        for first in range(0, spec.episodes, per_video):
            c, f = spec.file_of(first, per_video)
            path = root / VIDEO_PATH.format(video_key=cam.key, chunk_index=c, file_index=f)
            _write_video(tpl, lengths[first : first + per_video], path)

    schema = data_schema(features)
    writer: DataFileWriter | None = None
    rows: list[dict[str, Any]] = []
    for ep, n in enumerate(lengths):
        if writer is None or ep % spec.episodes_per_data_file == 0:
            if writer is not None:
                writer.close()
            c, f = spec.file_of(ep, spec.episodes_per_data_file)
            writer = DataFileWriter(root / DATA_PATH.format(chunk_index=c, file_index=f), schema)
        writer.write_episode(_columns(spec, ep, n, int(starts[ep])))
        first_in_video = int(starts[ep - ep % per_video])
        rows.append(_episode_row(spec, ep, n, int(starts[ep]), (int(starts[ep]) - first_in_video) / spec.fps))
        if (ep + 1) % spec.episodes_per_meta_file == 0 or ep + 1 == spec.episodes:
            c, f = spec.file_of(ep, spec.episodes_per_meta_file)
            write_episodes_file(rows, root / EPISODES_PATH.format(chunk_index=c, file_index=f))
            rows = []
    if writer is not None:
        writer.close()
    tasks = list(DEFAULT_TASKS)
    write_tasks(tasks, root / TASKS_PATH)
    write_json(_stats(spec, templates, lengths), root / STATS_PATH)
    write_info(
        root,
        fps=spec.fps,
        features=features,
        episodes=spec.episodes,
        frames=int(starts[-1]),
        tasks=len(tasks),
        chunks_size=spec.chunks_size,
    )
    return root


def _columns(spec: LargeSourceSpec, ep: int, n: int, start: int) -> dict[str, np.ndarray]:
    frame_index = np.arange(n, dtype=np.int64)
    return {
        "observation.state": expected_state(ep, frame_index, 3),
        "action": -expected_state(ep, frame_index, 2),
        "timestamp": (frame_index / spec.fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.full(n, ep, np.int64),
        "index": np.arange(start, start + n, dtype=np.int64),
        "task_index": np.full(n, ep % len(DEFAULT_TASKS), np.int64),
    }


def _episode_row(spec: LargeSourceSpec, ep: int, n: int, start: int, t0: float) -> dict[str, Any]:
    """The episode's ``meta/episodes`` row; ``t0`` is where it starts in its video files (seconds)."""
    dc, df = spec.file_of(ep, spec.episodes_per_data_file)
    mc, mf = spec.file_of(ep, spec.episodes_per_meta_file)
    per_video = spec.episodes_per_video_file or spec.episodes_per_data_file
    vc, vf = spec.file_of(ep, per_video)
    row: dict[str, Any] = {
        "episode_index": ep,
        "tasks": [DEFAULT_TASKS[ep % len(DEFAULT_TASKS)]],
        "length": n,
        "data/chunk_index": dc,
        "data/file_index": df,
        "dataset_from_index": start,
        "dataset_to_index": start + n,
    }
    for cam in spec.cameras:
        row.update(
            {
                f"videos/{cam.key}/chunk_index": vc,
                f"videos/{cam.key}/file_index": vf,
                f"videos/{cam.key}/from_timestamp": t0,
                f"videos/{cam.key}/to_timestamp": t0 + n / spec.fps,
            }
        )
    row.update({"meta/episodes/chunk_index": mc, "meta/episodes/file_index": mf})
    return row


def _stats(spec: LargeSourceSpec, templates: list[_Template], lengths: list[int]) -> dict[str, Any]:
    eps = np.repeat(np.arange(spec.episodes, dtype=np.int64), lengths)
    frames = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
    cols = {
        "observation.state": expected_state(eps, frames, 3),  # type: ignore[arg-type]
        "action": -expected_state(eps, frames, 2),  # type: ignore[arg-type]
        "timestamp": (frames / spec.fps).astype(np.float32),
        "frame_index": frames,
        "episode_index": eps,
    }
    stats = {k: feature_stats(v.reshape(len(eps), -1), axes=(0,), keepdims=False) for k, v in cols.items()}
    stats.update({c.key: t.stats for c, t in zip(spec.cameras, templates, strict=True)})
    return stats_to_json(stats)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m lerobot_wds.testing.synth_large ROOT --episodes N [--per-file M] ...``."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("root", type=Path)
    p.add_argument("--episodes", type=int, required=True)
    p.add_argument("--per-file", type=int, default=1000, help="episodes per data parquet file (and camera MP4)")
    p.add_argument(
        "--video-per-file", type=int, default=None, help="episodes per camera MP4 (default: --per-file)"
    )
    p.add_argument("--cameras", type=int, default=2, choices=(1, 2))
    p.add_argument("--frames", type=int, nargs=2, default=(20, 40), metavar=("MIN", "MAX"))
    a = p.parse_args(argv)
    spec = LargeSourceSpec(
        episodes=a.episodes,
        cameras=LARGE_CAMS[: a.cameras],
        min_frames=a.frames[0],
        max_frames=a.frames[1],
        episodes_per_data_file=a.per_file,
        episodes_per_video_file=a.video_per_file,
    )
    print(make_large_source(spec, a.root))


if __name__ == "__main__":
    main()
