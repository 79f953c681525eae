"""Builds small but real LeRobot v3.0 datasets (lerobot 0.6.1's layout) with real ffmpeg encodes for tests.

``make_dataset(spec, root)`` writes data/meta/videos exactly where and how lerobot would, and returns a
``LeRobotFixture`` describing what it wrote (paths, episode lengths, per-camera file/timestamps) so tests
can assert exact values. Every frame carries its (episode, frame, camera) identity (``synth_identity``),
``observation.state`` is ``[episode, frame, 0.5 * i ...]`` and ``action`` its negation, so rows and
decoded pixels can both be checked exactly.

Two ways to build a concatenated video file: ``per_episode`` encodes each episode alone and concatenates by
stream copy (what lerobot does: every episode starts on a keyframe, from/to_timestamp are cumulative
probed durations) and ``continuous`` encodes all episodes of a file in one go (long-GOP episodes then start
mid-GOP, exercising the converter's keyframe lead-in; timestamps are cumulative ``length / fps``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from lerobot_wds.testing.synth_identity import make_frame, read_identity, read_identity_full
from lerobot_wds.testing.synth_layout import (
    DATA_PATH,
    DEFAULT_FEATURES,
    EPISODES_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
    DataFileWriter,
    aggregate_stats,
    data_schema,
    feature_stats,
    flatten_stats,
    image_stats,
    next_chunk_file,
    stats_to_json,
    write_episodes_file,
    write_info,
    write_json,
    write_tasks,
)
from lerobot_wds.testing.synth_spec import (
    CAMS_2,
    CAMS_3,
    DEFAULT_TASKS,
    CameraSpec,
    EpisodeInfo,
    EpisodeVideo,
    LeRobotFixture,
    LeRobotSpec,
    expected_state,
)
from lerobot_wds.testing.synth_video import (
    concat_copy,
    default_settings,
    encode_frames,
    video_duration_s,
    video_stream_info,
)

# Re-exported so tests need one import: the spec/description types and the identity readers.
__all__ = [
    "CAMS_2",
    "CAMS_3",
    "DEFAULT_TASKS",
    "SMALL",
    "VARIANTS",
    "CameraSpec",
    "EpisodeInfo",
    "EpisodeVideo",
    "LeRobotFixture",
    "LeRobotSpec",
    "expected_state",
    "make_dataset",
    "make_variant",
    "read_identity",
    "read_identity_full",
    "remove",
]


def _assign_files(lengths: tuple[int, ...], budget: int | None, chunks_size: int) -> list[tuple[int, int]]:
    """Pure: (chunk, file) of each episode when a file holds at most ``budget`` frames (or episodes)."""
    out, cur, used = [], (0, 0), 0
    for n in lengths:
        if budget is not None and used > 0 and used + n > budget:
            cur, used = next_chunk_file(*cur, chunks_size), 0
        out.append(cur)
        used += n
    return out


def _episode_frames(ep: int, n: int, cam: int, spec: CameraSpec) -> np.ndarray:
    return np.stack([make_frame(ep, k, cam, spec.width, spec.height) for k in range(n)])


def _write_videos(spec: LeRobotSpec, root: Path, tmp: Path) -> tuple[list[dict[str, EpisodeVideo]], dict]:
    """Encodes every camera's files; returns per-episode video info and per-camera image stats + info."""
    n_ep = len(spec.episode_lengths)
    per_ep: list[dict[str, EpisodeVideo]] = [{} for _ in range(n_ep)]
    cam_extra: dict[str, tuple[list[dict], dict]] = {}
    for ci, cam in enumerate(spec.cameras):
        settings = default_settings(spec.codec, spec.gop, spec.bframes)
        files = _assign_files(spec.episode_lengths, spec.camera_budget(ci), spec.chunks_size)
        frames = [_episode_frames(ep, n, ci, cam) for ep, n in enumerate(spec.episode_lengths)]
        stats = [image_stats(f) for f in frames]
        for cf in dict.fromkeys(files):
            eps = [ep for ep in range(n_ep) if files[ep] == cf]
            path = root / VIDEO_PATH.format(video_key=cam.key, chunk_index=cf[0], file_index=cf[1])
            if spec.layout == "continuous":
                encode_frames(
                    np.concatenate([frames[ep] for ep in eps]),
                    path,
                    fps=spec.fps,
                    settings=settings,
                    faststart=spec.faststart,
                )
                durations = [spec.episode_lengths[ep] / spec.fps for ep in eps]
            else:
                parts = [
                    encode_frames(frames[ep], tmp / f"{cam.key}_{ep}.mp4", fps=spec.fps, settings=settings)
                    for ep in eps
                ]
                # lerobot: from/to_timestamp accumulate the probed duration of each episode's own encode.
                durations = [video_duration_s(p) for p in parts]
                concat_copy(parts, path, faststart=spec.faststart)
            t = 0.0
            for ep, d in zip(eps, durations, strict=True):
                per_ep[ep][cam.key] = EpisodeVideo(path, cf[0], cf[1], t, t + d)
                t += d
        info = {
            **video_stream_info(per_ep[0][cam.key].path),
            "video.g": settings.gop,
            "video.crf": settings.crf,
            "video.preset": int(settings.preset) if settings.preset.isdigit() else settings.preset,
            "video.fast_decode": 0,
            "video.video_backend": "pyav",
            "video.extra_options": {},
            "is_depth_map": False,
        }
        cam_extra[cam.key] = (stats, info)
    return per_ep, cam_extra


def make_dataset(spec: LeRobotSpec, root: Path, *, name: str = "custom") -> LeRobotFixture:
    """Writes a LeRobot v3.0 dataset described by ``spec`` at ``root`` (must not exist or be empty)."""
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"fixture root {root} exists and is not empty")
    features: dict = {
        c.key: {"dtype": "video", "shape": [c.height, c.width, 3], "names": ["height", "width", "channels"]}
        for c in spec.cameras
    }
    features["observation.state"] = {
        "dtype": "float32",
        "shape": [spec.state_dim],
        "names": [f"s{i}" for i in range(spec.state_dim)],
    }
    features["action"] = {
        "dtype": "float32",
        "shape": [spec.action_dim],
        "names": [f"a{i}" for i in range(spec.action_dim)],
    }
    features.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
    tasks = list(dict.fromkeys(spec.episode_task(ep) for ep in range(len(spec.episode_lengths))))

    with tempfile.TemporaryDirectory(prefix="lerobot_fixture_") as tmp:
        per_ep_videos, cam_extra = _write_videos(spec, root, Path(tmp))
    for key, (_, info) in cam_extra.items():
        features[key]["info"] = info

    schema = data_schema(features)
    data_files = _assign_files((1,) * len(spec.episode_lengths), spec.data_max_episodes, spec.chunks_size)
    meta_files = _assign_files((1,) * len(spec.episode_lengths), spec.meta_max_episodes, spec.chunks_size)
    writers: dict[tuple[int, int], DataFileWriter] = {}
    episodes, rows, ep_stats = [], [], []
    start = 0
    for ep, n in enumerate(spec.episode_lengths):
        task = spec.episode_task(ep)
        frame_index = np.arange(n, dtype=np.int64)
        state = expected_state(ep, frame_index, spec.state_dim)
        action = -expected_state(ep, frame_index, spec.action_dim)
        cols = {
            "observation.state": state,
            "action": action,
            "timestamp": (frame_index / spec.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(n, ep, np.int64),
            "index": np.arange(start, start + n, dtype=np.int64),
            "task_index": np.full(n, tasks.index(task), np.int64),
        }
        df = data_files[ep]
        if df not in writers:
            for w in writers.values():
                w.close()
            writers = {df: DataFileWriter(root / DATA_PATH.format(chunk_index=df[0], file_index=df[1]), schema)}
        writers[df].write_episode(cols)

        stats = {key: cam_extra[key][0][ep] for key in cam_extra}
        stats.update({k: feature_stats(v.reshape(n, -1), axes=(0,), keepdims=False) for k, v in cols.items()})
        ep_stats.append(stats)
        row: dict = {
            "episode_index": ep,
            "tasks": [task],
            "length": n,
            "data/chunk_index": df[0],
            "data/file_index": df[1],
            "dataset_from_index": start,
            "dataset_to_index": start + n,
        }
        for key, v in per_ep_videos[ep].items():
            row.update(
                {
                    f"videos/{key}/chunk_index": v.chunk_index,
                    f"videos/{key}/file_index": v.file_index,
                    f"videos/{key}/from_timestamp": v.from_timestamp,
                    f"videos/{key}/to_timestamp": v.to_timestamp,
                }
            )
        row.update(flatten_stats(stats))
        row.update({"meta/episodes/chunk_index": meta_files[ep][0], "meta/episodes/file_index": meta_files[ep][1]})
        rows.append(row)
        episodes.append(
            EpisodeInfo(
                ep,
                n,
                task,
                tasks.index(task),
                start,
                start + n,
                root / DATA_PATH.format(chunk_index=df[0], file_index=df[1]),
                per_ep_videos[ep],
            )
        )
        start += n
    for w in writers.values():
        w.close()
    for mf in dict.fromkeys(meta_files):
        write_episodes_file(
            [r for r, f in zip(rows, meta_files, strict=True) if f == mf],
            root / EPISODES_PATH.format(chunk_index=mf[0], file_index=mf[1]),
        )
    write_tasks(tasks, root / TASKS_PATH)
    write_json(stats_to_json(aggregate_stats(ep_stats)), root / STATS_PATH)
    write_info(
        root,
        fps=spec.fps,
        features=features,
        episodes=len(episodes),
        frames=start,
        tasks=len(tasks),
        chunks_size=spec.chunks_size,
    )
    return LeRobotFixture(name, root, spec, tuple(episodes), tuple(tasks), features)


# The standard variants every converter/reader test can be parametrised over.
VARIANTS: dict[str, LeRobotSpec] = {
    "av1": LeRobotSpec(codec="av1", cameras=CAMS_2, episode_lengths=(3, 40, 7)),
    "h264_bframes": LeRobotSpec(codec="h264", cameras=CAMS_3, episode_lengths=(3, 40, 7)),
    "hevc": LeRobotSpec(codec="hevc", cameras=CAMS_2, episode_lengths=(5, 33, 9)),
    "h264_moov_end": LeRobotSpec(codec="h264", cameras=CAMS_2[:1], episode_lengths=(4, 25, 6), faststart=False),
    "av1_multifile": LeRobotSpec(
        codec="av1",
        cameras=CAMS_2,
        episode_lengths=(4, 9, 3, 12, 5, 8),
        video_max_frames=(12, 20),
        data_max_episodes=2,
        meta_max_episodes=4,
        chunks_size=2,
    ),
    "h264_continuous": LeRobotSpec(
        codec="h264", cameras=CAMS_2, episode_lengths=(3, 40, 7, 12), layout="continuous"
    ),
}
SMALL = LeRobotSpec(codec="av1", cameras=CAMS_2, episode_lengths=(5, 12, 3, 8))


def make_variant(name: str, root: Path) -> LeRobotFixture:
    """Builds one of ``VARIANTS`` (or "small") at ``root``."""
    if name == "small":
        return make_dataset(SMALL, root, name=name)
    if name not in VARIANTS:
        raise ValueError(f"unknown fixture variant {name!r}; valid: {sorted(VARIANTS) + ['small']}")
    return make_dataset(VARIANTS[name], root, name=name)


def remove(fixture: LeRobotFixture) -> None:
    """Deletes a fixture's files (for tests that build throwaway variants)."""
    shutil.rmtree(fixture.root)
