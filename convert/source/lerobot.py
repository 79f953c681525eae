"""Reading a LeRobot v3 source through fsspec: meta (info, episodes, tasks), per-episode rows, MP4 indexes.

The source root may be a local path or any fsspec URL. Episode metadata is loaded once, without the
``stats/*`` columns, into compact columns (:class:`~lerobot_wds.convert.source.table.EpisodeTable`); data
parquet footers and parsed MP4 indexes are kept in bounded caches so memory stays bounded however many files
the dataset has. Rows of one episode are read from only the row groups
whose ``episode_index`` statistics can contain it (LeRobot writes one row group per episode).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_wds.convert.config import DEFAULT_INDEX_CACHE_BYTES
from lerobot_wds.convert.errors import SourceError, SourceInputError
from lerobot_wds.convert.metrics import StageTimes
from lerobot_wds.convert.mp4 import ReadFn, TrackIndex, file_reader, parse_track_index
from lerobot_wds.convert.source.rows import RowGroupIndex, RowRequest, read_episodes
from lerobot_wds.convert.source.table import EpisodeRecord, EpisodeTable, EpisodeTableBuilder, VideoRef
from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import MANIFEST_NAME, SHARDS_DIR
from lerobot_wds.core.lru import LoadingLRU
from lerobot_wds.core.retry import RetryPolicy, read_with_retries
from lerobot_wds.core.tasks import read_tasks
from lerobot_wds.core.timeouts import DEFAULT_READ_TIMEOUT_S, with_read_timeout
from lerobot_wds.core.urls import join_url, listing_target

T = TypeVar("T")

INFO = "meta/info.json"
TASKS = "meta/tasks.parquet"
EPISODES_GLOB = "meta/episodes/chunk-*/file-*.parquet"


class LeRobotSource:
    """A LeRobot v3 dataset root opened through fsspec (thread-safe after construction)."""

    def __init__(
        self,
        url: str,
        options: dict[str, Any] | None = None,
        *,
        cache_size: int = 64,
        footer_cache_size: int | None = None,
        index_cache_bytes: int = DEFAULT_INDEX_CACHE_BYTES,
        attempts: int = 5,
        backoff_s: float = 0.5,
        times: StageTimes | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.times = times or StageTimes()
        self.attempts, self.backoff_s = attempts, backoff_s
        self._policy = RetryPolicy(attempts=attempts, backoff_s=backoff_s)
        # http(s) / s3: a stalled server raises a read timeout (retried) instead of hanging; options may set theirs
        options = with_read_timeout(url, options or {}, DEFAULT_READ_TIMEOUT_S)
        # a signed URL's query goes with every request (reads and the listing of meta/), paths are joined without
        listed, options = listing_target(url, options)
        self.fs, root = fsspec.core.url_to_fs(listed, **options)
        self.root = root.rstrip("/")
        try:
            self.info_bytes = self._retry(lambda: self.fs.cat_file(self.full(INFO)), f"read {self.url}/{INFO}")
        except FileNotFoundError:
            raise self._not_a_source() from None
        if self._exists(MANIFEST_NAME) and self._exists(SHARDS_DIR):  # a conversion copies meta/ too
            raise self._converted_root()
        try:
            self.info: dict[str, Any] = json.loads(self.info_bytes)
        except ValueError as e:
            raise SourceError(f"{self.url}/{INFO}: not JSON: {e}") from e
        version = self.info.get("codebase_version")
        if version != "v3.0":
            raise SourceError(f"{self.url}/{INFO}: codebase_version {version!r}, expected 'v3.0' (LeRobot v3)")
        for key in ("fps", "features", "data_path"):
            if key not in self.info:
                raise SourceError(f"{self.url}/{INFO}: missing {key!r}")
        self.fps = float(self.info["fps"])
        self.features: dict[str, Any] = self.info["features"]
        self.camera_keys = [k for k, v in self.features.items() if v.get("dtype") == "video"]
        if self.camera_keys and not self.info.get("video_path"):
            raise SourceError(f"{self.url}/{INFO}: video features {self.camera_keys} but no 'video_path'")
        self.meta_files = self._list_meta()
        self.tasks = self._load_tasks()
        self.episodes = self._load_episodes()
        # a parsed footer holds about 7 KB per row group (lerobot writes one per episode): a small cache suits
        # readers that visit a file's episodes together (the converter), a larger one readers that do not
        self._footers: LoadingLRU[str, pq.FileMetaData] = LoadingLRU(
            footer_cache_size or cache_size, self._read_footer
        )
        # bounded by bytes, not files: a part's episodes visit every camera file of the source in turn, so each
        # file's index is parsed once while the indexes of the files the part reads fit
        self._tracks: LoadingLRU[str, tuple[TrackIndex, ReadFn]] = LoadingLRU(
            index_cache_bytes, self._open_track, cost=lambda track: track[0].nbytes
        )
        self._parse_lock = threading.Lock()
        self.indexes_parsed = 0  # MP4 indexes parsed so far (a file evicted and needed again counts again)
        # compact (16 bytes a row group), so every data file's index is kept once built
        n_data = len(self.episodes.data_files())
        self._row_index: LoadingLRU[str, RowGroupIndex] = LoadingLRU(max(1, n_data), self._read_row_index)

    def _exists(self, rel: str) -> bool:
        """Whether ``rel`` (``""``: the root) exists; a probe that cannot tell says no."""
        try:
            return bool(self.fs.exists(self.full(rel) if rel else self.root))
        except Exception:  # noqa: BLE001 - only used to choose the message of an error already found
            return False

    def _converted_root(self) -> SourceInputError:
        return SourceInputError(
            f"{self.url} is a converted root (it has {MANIFEST_NAME}), not a LeRobot dataset: convert reads "
            "the LeRobot v3 dataset it was made from; read this root with LeRobotWdsDataset"
        )

    def _not_a_source(self) -> SourceInputError:
        """The error for a root without meta/info.json: a missing folder, a converted root, or another folder."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        if "file" in protocols and not self._exists(""):
            return SourceInputError(
                f"{self.url}: no such folder; SRC must be a LeRobot v3 dataset root (the folder holding {INFO})"
            )
        if self._exists(MANIFEST_NAME):
            return self._converted_root()
        return SourceInputError(
            f"{self.url}/{INFO}: missing, so {self.url} is not a LeRobot v3 dataset root (give the folder "
            "holding meta/info.json)"
        )

    # -- files ------------------------------------------------------------------------------------------

    def full(self, rel: str) -> str:
        return join_url(self.root, rel)

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        """Runs a source read, retrying transient errors; missing files still raise FileNotFoundError."""
        return read_with_retries(fn, what=what, policy=self._policy)

    def read_bytes(self, rel: str) -> bytes:
        """Reads a whole (small) file; raises SourceError naming it when it is missing."""
        try:
            return self._retry(lambda: self.fs.cat_file(self.full(rel)), f"read {self.url}/{rel}")
        except FileNotFoundError as e:
            raise SourceError(f"{self.url}/{rel}: missing from the source") from e

    def _list_meta(self) -> list[str]:
        prefix = self.root + "/"
        found = sorted(
            p[len(prefix) :]
            for p in (self.fs._strip_protocol(x) for x in self.fs.find(self.full("meta")))
            if p.startswith(prefix)
        )
        episodes = [p for p in found if _matches_episodes(p)]
        if TASKS not in found or not episodes:
            raise SourceError(
                f"{self.url}/meta: listing shows no {TASKS} or no {EPISODES_GLOB} (found {found[:20]}); "
                "a LeRobot v3 source needs both, and an HTTP source needs directory listings"
            )
        return found

    def _load_tasks(self) -> dict[str, int]:
        where = f"{self.url}/{TASKS}"
        try:
            by_index = read_tasks(self.read_bytes(TASKS), where)  # the reader's parser: one owner of the layout
        except FormatError as e:
            raise SourceError(str(e)) from e
        return {task: index for index, task in by_index.items()}

    def _load_episodes(self) -> EpisodeTable:
        table = EpisodeTableBuilder(self.camera_keys)
        seen: set[int] = set()
        for rel in (p for p in self.meta_files if _matches_episodes(p)):

            def read(rel: str = rel) -> pa.Table:
                with self.fs.open(self.full(rel), "rb") as f:
                    pf = pq.ParquetFile(f)
                    columns = [n for n in pf.schema_arrow.names if not n.startswith("stats/")]
                    return pf.read(columns=columns)

            # rows become Python objects a batch at a time: a meta file can list 10^4 episodes
            batches = self._retry(read, f"read {self.url}/{rel}").to_batches(max_chunksize=1024)
            for row in (row for batch in batches for row in batch.to_pylist()):
                rec = self._episode_record(row, rel)
                if rec.episode_index in seen:
                    raise SourceError(f"{self.url}/{rel}: episode {rec.episode_index} listed twice")
                seen.add(rec.episode_index)
                table.add(rec)
        total = self.info.get("total_episodes")
        if total is not None and total != len(seen):
            raise SourceError(f"{self.url}/meta/episodes: {len(seen)} episodes, info.json says {total}")
        return table.build()

    def _episode_record(self, row: dict[str, Any], rel: str) -> EpisodeRecord:
        try:
            ep = int(row["episode_index"])
            videos = {}
            for cam in self.camera_keys:
                path = self.info["video_path"].format(
                    video_key=cam,
                    chunk_index=row[f"videos/{cam}/chunk_index"],
                    file_index=row[f"videos/{cam}/file_index"],
                )
                videos[cam] = VideoRef(
                    path, float(row[f"videos/{cam}/from_timestamp"]), float(row[f"videos/{cam}/to_timestamp"])
                )
            data_path = self.info["data_path"].format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
            )
            return EpisodeRecord(
                episode_index=ep,
                length=int(row["length"]),
                tasks=tuple(row["tasks"]),
                dataset_from_index=int(row["dataset_from_index"]),
                dataset_to_index=int(row["dataset_to_index"]),
                data_path=data_path,
                videos=videos,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SourceError(f"{self.url}/{rel}: episode row lacks or has a bad field: {e!r}") from e

    # -- rows -------------------------------------------------------------------------------------------

    def _read_footer(self, rel: str) -> pq.FileMetaData:
        try:
            return self._retry(
                lambda: pq.read_metadata(self.fs.open(self.full(rel), "rb")), f"read {self.url}/{rel}"
            )
        except FileNotFoundError as e:
            raise SourceError(f"{self.url}/{rel}: data file missing from the source") from e

    def _read_row_index(self, rel: str) -> RowGroupIndex:
        return RowGroupIndex.from_footer(self._footers.get(rel), f"{self.url}/{rel}")

    def episode_rows(self, rec: EpisodeRecord) -> pa.Table:
        """Returns exactly the episode's rows (schema unchanged); SourceError if they are missing or wrong."""
        return self._unwrap(self.rows_in_file(rec.data_path, [rec])[rec.episode_index])

    def rows_in_file(self, rel: str, recs: Iterable[EpisodeRecord]) -> dict[int, pa.Table | SourceError]:
        """Reads the rows of every episode of ``recs`` (all in data file ``rel``) through one open handle.

        The file's footer and row-group index are looked up once for all of them; an episode whose rows are
        missing or wrong maps to its SourceError, and a file that cannot be read at all raises it.
        """
        md = self._footers.get(rel)
        index = self._row_index.get(rel)
        requests = [
            RowRequest(r.episode_index, r.length, range(r.dataset_from_index, r.dataset_to_index)) for r in recs
        ]

        def read() -> dict[int, pa.Table | SourceError]:
            return read_episodes(
                lambda: self.fs.open(self.full(rel), "rb"), md, index, requests, f"{self.url}/{rel}"
            )

        with self.times.timed("rows"):
            return self._retry(read, f"read {self.url}/{rel} rows of {len(requests)} episodes")

    @staticmethod
    def _unwrap(rows: pa.Table | SourceError) -> pa.Table:
        if isinstance(rows, SourceError):
            raise rows
        return rows

    # -- videos -----------------------------------------------------------------------------------------

    def _open_track(self, rel: str) -> tuple[TrackIndex, ReadFn]:
        with self._parse_lock:
            self.indexes_parsed += 1
        with self.times.timed("mp4_index"):
            try:
                read, size = file_reader(self.fs, self.full(rel), attempts=self.attempts, backoff_s=self.backoff_s)
            except FileNotFoundError as e:
                raise SourceError(f"{self.url}/{rel}: video file missing from the source") from e
            index = parse_track_index(read, size, name=f"{self.url}/{rel}")

        def timed_read(offset: int, length: int) -> bytes:
            with self.times.timed("video_reads"):
                return read(offset, length)

        return index, timed_read

    def track(self, rel: str) -> tuple[TrackIndex, ReadFn]:
        """Returns the parsed index of a source MP4 and a reader over it (parsed once while cached)."""
        return self._tracks.get(rel)

    # -- sizes ------------------------------------------------------------------------------------------

    def file_sizes(self, rels: Iterable[str], workers: int) -> dict[str, int]:
        """Returns the size of each file (stat calls run in parallel: remote stats are latency-bound)."""
        unique = sorted(set(rels))

        def size(rel: str) -> int:
            try:
                return int(self._retry(lambda: self.fs.size(self.full(rel)), f"size of {self.url}/{rel}"))
            except FileNotFoundError as e:
                raise SourceError(f"{self.url}/{rel}: missing from the source") from e

        with ThreadPoolExecutor(max(1, workers)) as pool:
            return dict(zip(unique, pool.map(size, unique), strict=True))


def _matches_episodes(rel: str) -> bool:
    parts = rel.split("/")
    return (
        len(parts) == 4
        and parts[:2] == ["meta", "episodes"]
        and parts[2].startswith("chunk-")
        and parts[3].startswith("file-")
        and parts[3].endswith(".parquet")
    )
