"""The episode table of a source held as columns: a few bytes per episode, records built on demand.

A part of an array job needs every episode's length and file spans once (the shard plan and the source's
fingerprint are functions of the whole table) but builds samples for its own episodes only. Keeping the table
as :class:`EpisodeRecord` objects costs about 2 KB an episode (200 MB at 10^5 episodes); :class:`EpisodeTable`
keeps integer and float arrays plus each distinct path and task list once, and is a read-only
``Mapping[int, EpisodeRecord]`` in ascending episode order, so callers see the records they always did.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VideoRef:
    """Where one camera's frames of an episode live: a file and a time span in it."""

    path: str
    from_timestamp: float
    to_timestamp: float


@dataclass(frozen=True)
class EpisodeRecord:
    """One row of ``meta/episodes``: what the converter needs to find and check an episode."""

    episode_index: int
    length: int
    tasks: tuple[str, ...]
    dataset_from_index: int
    dataset_to_index: int
    data_path: str
    videos: dict[str, VideoRef]


class _Interned:
    """Distinct values kept once, each row holding its value's code."""

    def __init__(self) -> None:
        self.values: list = []
        self._codes: dict = {}

    def code(self, value: object) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code


class EpisodeTableBuilder:
    """Collects episode records one at a time into compact columns (a record is not kept once added)."""

    def __init__(self, cameras: Sequence[str]) -> None:
        self.cameras = tuple(cameras)
        self._paths, self._tasks = _Interned(), _Interned()
        self._ints = {k: array("q") for k in ("index", "length", "from_index", "to_index")}
        self._codes = {k: array("i") for k in ("tasks", "data_path", "video_path")}
        self._times = {k: array("d") for k in ("video_from", "video_to")}

    def add(self, rec: EpisodeRecord) -> None:
        self._ints["index"].append(rec.episode_index)
        self._ints["length"].append(rec.length)
        self._ints["from_index"].append(rec.dataset_from_index)
        self._ints["to_index"].append(rec.dataset_to_index)
        self._codes["tasks"].append(self._tasks.code(rec.tasks))
        self._codes["data_path"].append(self._paths.code(rec.data_path))
        for cam in self.cameras:
            ref = rec.videos[cam]
            self._codes["video_path"].append(self._paths.code(ref.path))
            self._times["video_from"].append(ref.from_timestamp)
            self._times["video_to"].append(ref.to_timestamp)

    def build(self) -> EpisodeTable:
        """The table, sorted by episode index."""
        index = np.frombuffer(self._ints["index"], dtype=np.int64)
        order = np.argsort(index, kind="stable")
        n, k = len(index), len(self.cameras)

        def col(buf: array, dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
            return np.frombuffer(buf, dtype=dtype).reshape((n, *shape))[order].copy()

        return EpisodeTable(
            cameras=self.cameras,
            index=col(self._ints["index"], np.int64),
            length=col(self._ints["length"], np.int64),
            from_index=col(self._ints["from_index"], np.int64),
            to_index=col(self._ints["to_index"], np.int64),
            tasks=col(self._codes["tasks"], np.int32),
            data_path=col(self._codes["data_path"], np.int32),
            video_path=col(self._codes["video_path"], np.int32, (k,)),
            video_from=col(self._times["video_from"], np.float64, (k,)),
            video_to=col(self._times["video_to"], np.float64, (k,)),
            paths=self._paths.values,
            task_lists=self._tasks.values,
        )


@dataclass(frozen=True, eq=False)
class EpisodeTable(Mapping[int, EpisodeRecord]):
    """Every episode of a source as columns sorted by episode index (row ``i`` of each array), a read-only
    mapping from episode index to :class:`EpisodeRecord`. Paths and task lists are stored once, rows hold codes.
    """

    cameras: tuple[str, ...]
    index: np.ndarray
    length: np.ndarray
    from_index: np.ndarray
    to_index: np.ndarray
    tasks: np.ndarray
    data_path: np.ndarray
    video_path: np.ndarray  # (episodes, cameras)
    video_from: np.ndarray
    video_to: np.ndarray
    paths: list[str]
    task_lists: list[tuple[str, ...]]

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns (the distinct paths and task lists not counted)."""
        cols = (self.index, self.length, self.from_index, self.to_index, self.tasks, self.data_path)
        return sum(a.nbytes for a in cols) + self.video_path.nbytes + self.video_from.nbytes + self.video_to.nbytes

    def data_files(self) -> list[str]:
        """The distinct data files, in first-seen order."""
        return [self.paths[c] for c in dict.fromkeys(self.data_path.tolist())]

    def _position(self, episode_index: object) -> int:
        if not isinstance(episode_index, int | np.integer):
            raise KeyError(episode_index)
        pos = int(np.searchsorted(self.index, episode_index))
        if pos == len(self.index) or self.index[pos] != episode_index:
            raise KeyError(episode_index)
        return pos

    def record_at(self, pos: int) -> EpisodeRecord:
        """The record of the ``pos``-th episode in index order."""
        videos = {
            cam: VideoRef(
                self.paths[int(self.video_path[pos, c])],
                float(self.video_from[pos, c]),
                float(self.video_to[pos, c]),
            )
            for c, cam in enumerate(self.cameras)
        }
        return EpisodeRecord(
            episode_index=int(self.index[pos]),
            length=int(self.length[pos]),
            tasks=self.task_lists[int(self.tasks[pos])],
            dataset_from_index=int(self.from_index[pos]),
            dataset_to_index=int(self.to_index[pos]),
            data_path=self.paths[int(self.data_path[pos])],
            videos=videos,
        )

    def __getitem__(self, episode_index: int) -> EpisodeRecord:
        return self.record_at(self._position(episode_index))

    def __contains__(self, episode_index: object) -> bool:
        try:
            self._position(episode_index)
        except KeyError:
            return False
        return True

    def records(self) -> Iterator[EpisodeRecord]:
        """Every record in episode order (faster than ``values()``: no lookup per episode)."""
        return (self.record_at(pos) for pos in range(len(self)))

    def __iter__(self) -> Iterator[int]:
        return iter(self.index.tolist())

    def __len__(self) -> int:
        return int(self.index.shape[0])
