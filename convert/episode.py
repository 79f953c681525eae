"""Building episodes' tar samples: ``<key>.json``, ``<key>.parquet`` and one ``<key>.<camera>.mp4`` each.

:func:`built_episodes` builds a part's episodes on a thread pool in shard order. A shard's rows are read before
its episodes are built, grouped by data file (one open handle and one footer lookup per run of
``ROWS_PER_READ`` episodes), so each row group is read once however the shuffled plan spreads a file's episodes.

The rows are re-serialised with their schema unchanged; every camera's mini-MP4 is cut by the remux core
(samples copied; encoded again only when ``convert --reencode`` asks, see :mod:`convert.mp4.reencode`). Any
bad input surfaces as :class:`EpisodeError` naming the episode and, where it applies, the camera and source
file, so ``--on-error skip`` can record the reason.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_wds.convert.errors import EpisodeError
from lerobot_wds.convert.mp4 import EncodeSettings, Mp4Error, cut_episode, reencode_clip
from lerobot_wds.convert.plan import ShardPlan
from lerobot_wds.convert.source import EpisodeRecord, LeRobotSource, SourceError
from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import CameraMeta, EpisodeMeta, episode_key, member_names

# Errors that mean "this episode's input is bad" (skippable); anything else (I/O, bugs) always propagates.
BAD_INPUT_ERRORS = (Mp4Error, SourceError, FormatError)


@dataclass(frozen=True)
class EpisodeSample:
    """One built sample: its key, members in ``format.member_names`` order, and frame count."""

    episode_index: int
    key: str
    members: tuple[tuple[str, bytes], ...]
    frames: int

    @property
    def bytes(self) -> int:
        return sum(len(d) for _, d in self.members)


def rows_to_parquet(table: pa.Table) -> bytes:
    """Serialises an episode's rows as one parquet file (one row group; schema and its metadata kept)."""
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=max(1, table.num_rows))
    return buf.getvalue()


def build_episode(
    source: LeRobotSource,
    episode_index: int,
    rows: pa.Table | SourceError | None = None,
    reencode: EncodeSettings | None = None,
) -> EpisodeSample:
    """Reads and remuxes one episode into its sample members (``reencode``: encode its frames again).

    ``rows``: the episode's rows (or the error reading them) when they were read together with other episodes
    of their data file (:meth:`LeRobotSource.rows_in_file`); None reads them here.

    Raises:
        EpisodeError: the episode is unknown, its rows are missing or wrong, or a camera's video cannot be cut
            (no keyframe, frame count differs, corrupt MP4).
    """
    try:
        rec = source.episodes[episode_index]
    except KeyError:
        raise EpisodeError(episode_index, f"not in {source.url}/meta/episodes") from None
    try:
        if isinstance(rows, SourceError):
            raise rows
        if rows is None:
            rows = source.episode_rows(rec)
        cameras = {cam: _cut_camera(source, rec, cam, reencode) for cam in source.camera_keys}
    except BAD_INPUT_ERRORS as e:
        raise EpisodeError(episode_index, str(e)) from e
    task_index = _task_index(source, rec)
    meta = EpisodeMeta(
        episode_index=episode_index,
        length=rec.length,
        fps=source.fps,
        tasks=list(rec.tasks),
        task_index=task_index,
        dataset_from_index=rec.dataset_from_index,
        dataset_to_index=rec.dataset_to_index,
        cameras={cam: meta for cam, (meta, _) in cameras.items()},
    )
    with source.times.timed("rows_out"):
        blobs = [meta.to_json_bytes(), rows_to_parquet(rows)] + [data for _, data in cameras.values()]
    names = member_names(episode_index, source.camera_keys)
    return EpisodeSample(
        episode_index, episode_key(episode_index), tuple(zip(names, blobs, strict=True)), rec.length
    )


def _cut_camera(
    source: LeRobotSource, rec: EpisodeRecord, cam: str, reencode: EncodeSettings | None
) -> tuple[CameraMeta, bytes]:
    ref = rec.videos[cam]
    index, read = source.track(ref.path)
    where = f"{source.url}/{ref.path} (episode {rec.episode_index}, camera {cam})"
    with source.times.timed("remux", excluding="video_reads"):
        clip = cut_episode(
            index,
            read,
            from_timestamp=ref.from_timestamp,
            to_timestamp=ref.to_timestamp,
            fps=source.fps,
            expected_frames=rec.length,
            where=where,
        )
    if reencode is not None:
        clip = reencode_clip(clip, length=rec.length, fps=source.fps, settings=reencode, where=where)
    meta = CameraMeta(
        codec=clip.codec,
        width=clip.width,
        height=clip.height,
        frames=clip.frames,
        lead_in=clip.lead_in,
        trail=clip.trail,
        pts_offset_s=clip.pts_offset_s,
        source_file=ref.path,
        source_from_timestamp=ref.from_timestamp,
        source_to_timestamp=ref.to_timestamp,
    )
    return meta, clip.data


def _task_index(source: LeRobotSource, rec: EpisodeRecord) -> int:
    if not rec.tasks:
        raise EpisodeError(rec.episode_index, f"{source.url}/meta/episodes lists no task")
    try:
        return int(source.tasks[rec.tasks[0]])
    except KeyError:
        raise EpisodeError(
            rec.episode_index, f"task {rec.tasks[0]!r} is not in {source.url}/meta/tasks.parquet"
        ) from None


# Parsed parquet footers kept: a shard's reads visit each data file's episodes together (see _shard_rows).
FOOTER_CACHE = 4
# Episodes of one data file read together (one open handle, one footer lookup) by one build-pool task.
ROWS_PER_READ = 64


def _shard_rows(
    pool: ThreadPoolExecutor, source: LeRobotSource, episodes: tuple[int, ...]
) -> dict[int, Future[dict[int, pa.Table | SourceError]]]:
    """Submits the reads of a shard's rows, grouped by data file in runs of ``ROWS_PER_READ`` episodes.

    Submitted before the shard's episode builds, so the pool (first in, first out) starts every read before
    any build that waits on it. Each row group is read once however the shard's episodes spread over files.
    """
    by_file: dict[str, list[EpisodeRecord]] = {}
    for ep in episodes:
        rec = source.episodes.get(ep)
        if rec is not None:
            by_file.setdefault(rec.data_path, []).append(rec)
    out: dict[int, Future[dict[int, pa.Table | SourceError]]] = {}
    for rel, recs in by_file.items():
        for i in range(0, len(recs), ROWS_PER_READ):
            run = recs[i : i + ROWS_PER_READ]
            fut = pool.submit(source.rows_in_file, rel, run)
            out.update((r.episode_index, fut) for r in run)
    return out


def _build(
    source: LeRobotSource,
    ep: int,
    rows: Future[dict[int, pa.Table | SourceError]] | None,
    reencode: EncodeSettings | None = None,
) -> EpisodeSample:
    """Builds one episode from its prefetched rows (taken out of the shared result, so they are freed)."""
    if rows is None:
        return build_episode(source, ep, reencode=reencode)
    try:
        mine: pa.Table | SourceError = rows.result().pop(ep)
    except SourceError as e:  # the data file itself is bad: this episode's input error, like a single read
        mine = e
    return build_episode(source, ep, mine, reencode)


def built_episodes(
    pool: ThreadPoolExecutor,
    source: LeRobotSource,
    todo: list[ShardPlan],
    lookahead: int,
    reencode: EncodeSettings | None = None,
) -> Generator[tuple[ShardPlan, int, Future[EpisodeSample]], None, None]:
    """Yields every episode of ``todo`` in order with its build future, keeping ``lookahead`` in flight
    (``reencode``: each episode's frames encoded again, ``convert --reencode``)."""
    window: deque[tuple[ShardPlan, int, Future[EpisodeSample]]] = deque()
    try:
        for shard in todo:
            rows = _shard_rows(pool, source, shard.episodes)
            for ep in shard.episodes:
                window.append((shard, ep, pool.submit(_build, source, ep, rows.get(ep), reencode)))
                if len(window) >= lookahead:
                    yield window.popleft()
        while window:
            yield window.popleft()
    finally:
        for _, _, fut in window:
            fut.cancel()
