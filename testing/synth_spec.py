"""What a LeRobot test fixture is: the frozen spec a dataset is built from and the description returned.

``LeRobotSpec`` is validated in ``__post_init__`` so a bad spec fails before any encoding; ``LeRobotFixture``
(with ``EpisodeInfo`` / ``EpisodeVideo``) records exactly what ``synth.make_dataset`` wrote, so
tests assert against exact paths, lengths and timestamps. ``expected_state`` gives the rows' state values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from lerobot_wds.testing.synth_identity import check_frame_size
from lerobot_wds.testing.synth_video import Codec, default_settings

Layout = Literal["per_episode", "continuous"]
DEFAULT_TASKS = ("pick up the cube", "open the drawer", "fold the towel")


@dataclass(frozen=True)
class CameraSpec:
    """One camera: its feature key and frame size (even dims; >= 64x64 for AV1, see ``CAMS_2``)."""

    key: str
    width: int
    height: int

    def __post_init__(self) -> None:
        check_frame_size(self.width, self.height)


# The system ffmpeg's SVT-AV1 (1.4) refuses frames under 64 pixels high, so every camera is >= 64 high.
CAMS_2 = (CameraSpec("observation.images.front", 64, 64), CameraSpec("observation.images.wrist", 96, 72))
CAMS_3 = CAMS_2 + (CameraSpec("observation.images.top", 80, 64),)


@dataclass(frozen=True)
class LeRobotSpec:
    """What dataset to build; validated so a bad spec fails before any encoding.

    Attributes:
        codec: "av1" (lerobot default, GOP 2), "h264" or "hevc" (long GOP with B-frames).
        cameras: 1-7 cameras, typically of different sizes.
        episode_lengths: frames per episode.
        fps: integer frame rate, as lerobot stores it.
        tasks: one task string per episode (default cycles over ``DEFAULT_TASKS``).
        layout: "per_episode" (encode + stream-copy concat, like lerobot) or "continuous" (one encode).
        faststart: False leaves the moov box after mdat.
        video_max_frames: per-file frame budget of each camera (an int for all, a tuple per camera, or
            None for one file): an episode that would overflow starts the next file, like lerobot's
            size-based rollover. Different budgets make cameras roll over at different episodes.
        data_max_episodes / meta_max_episodes: episodes per data / meta-episodes parquet file (None: one).
        chunks_size: files per chunk directory before rolling over to the next chunk.
        gop / bframes: override the codec's default GOP length / consecutive B-frames.
        state_dim / action_dim: vector feature sizes.
    """

    codec: Codec = "av1"
    cameras: tuple[CameraSpec, ...] = CAMS_2
    episode_lengths: tuple[int, ...] = (3, 40, 7)
    fps: int = 10
    tasks: tuple[str, ...] | None = None
    layout: Layout = "per_episode"
    faststart: bool = True
    video_max_frames: int | tuple[int | None, ...] | None = None
    data_max_episodes: int | None = None
    meta_max_episodes: int | None = None
    chunks_size: int = 1000
    gop: int | None = None
    bframes: int | None = None
    state_dim: int = 3
    action_dim: int = 2

    def __post_init__(self) -> None:
        default_settings(self.codec, self.gop, self.bframes)  # validates codec/gop/bframes
        if not 1 <= len(self.cameras) <= 7 or len({c.key for c in self.cameras}) != len(self.cameras):
            raise ValueError(f"need 1-7 cameras with distinct keys, got {[c.key for c in self.cameras]}")
        small = [f"{c.key} {c.width}x{c.height}" for c in self.cameras if min(c.width, c.height) < 64]
        if self.codec == "av1" and small:
            raise ValueError(f"av1 (the system ffmpeg's SVT-AV1) needs frames of at least 64x64, got {small}")
        if not self.episode_lengths or min(self.episode_lengths) < 1:
            raise ValueError(f"episode_lengths must be non-empty and >= 1, got {self.episode_lengths}")
        if self.tasks is not None and len(self.tasks) != len(self.episode_lengths):
            raise ValueError(f"tasks has {len(self.tasks)} entries for {len(self.episode_lengths)} episodes")
        if self.layout not in ("per_episode", "continuous"):
            raise ValueError(f"layout {self.layout!r} is not one of ('per_episode', 'continuous')")
        if isinstance(self.video_max_frames, tuple) and len(self.video_max_frames) != len(self.cameras):
            raise ValueError(
                f"video_max_frames has {len(self.video_max_frames)} entries for {len(self.cameras)} cameras"
            )
        for name in ("data_max_episodes", "meta_max_episodes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {getattr(self, name)}")
        if self.fps < 1 or self.chunks_size < 1 or self.state_dim < 1 or self.action_dim < 1:
            raise ValueError(f"fps, chunks_size, state_dim, action_dim must be >= 1: {self}")

    def episode_task(self, episode_index: int) -> str:
        if self.tasks is not None:
            return self.tasks[episode_index]
        return DEFAULT_TASKS[episode_index % len(DEFAULT_TASKS)]

    def camera_budget(self, camera: int) -> int | None:
        if isinstance(self.video_max_frames, tuple):
            return self.video_max_frames[camera]
        return self.video_max_frames


@dataclass(frozen=True)
class EpisodeVideo:
    """Where one episode of one camera lives: its file and its [from, to) timestamps in that file."""

    path: Path
    chunk_index: int
    file_index: int
    from_timestamp: float
    to_timestamp: float


@dataclass(frozen=True)
class EpisodeInfo:
    """One written episode: global row range [dataset_from_index, dataset_to_index) and its videos."""

    index: int
    length: int
    task: str
    task_index: int
    dataset_from_index: int
    dataset_to_index: int
    data_path: Path
    videos: dict[str, EpisodeVideo]


@dataclass(frozen=True)
class LeRobotFixture:
    """What ``make_dataset`` wrote; tests assert against these exact values."""

    name: str
    root: Path
    spec: LeRobotSpec
    episodes: tuple[EpisodeInfo, ...]
    tasks: tuple[str, ...]
    features: dict = field(repr=False)

    @property
    def fps(self) -> int:
        return self.spec.fps

    @property
    def codec(self) -> str:
        return self.spec.codec

    @property
    def camera_keys(self) -> list[str]:
        return [c.key for c in self.spec.cameras]

    @property
    def camera_sizes(self) -> dict[str, tuple[int, int]]:
        """Camera key -> (width, height)."""
        return {c.key: (c.width, c.height) for c in self.spec.cameras}

    @property
    def episode_lengths(self) -> list[int]:
        return [e.length for e in self.episodes]

    @property
    def total_frames(self) -> int:
        return sum(self.episode_lengths)

    def video_files(self, camera_key: str) -> list[Path]:
        """Returns the distinct video files of a camera in episode order."""
        return list(dict.fromkeys(e.videos[camera_key].path for e in self.episodes))


def expected_state(episode: int, frame: np.ndarray | int, dim: int) -> np.ndarray:
    """Returns ``observation.state`` rows the factory writes: ``[episode, frame, 0.5, 1.0, ...]``."""
    frames = np.atleast_1d(np.asarray(frame, dtype=np.float32))
    out = np.tile((0.5 * np.arange(dim, dtype=np.float32))[None, :], (len(frames), 1))
    out[:, 0] = episode
    if dim > 1:
        out[:, 1] = frames
    return out
