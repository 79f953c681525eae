"""Opening a converted root: its manifest (the only thing trusted) and the task names from meta/tasks.parquet."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_wds.reader.format import MANIFEST_NAME, META_DIR, FormatError, Manifest
from lerobot_wds.reader.reads import join_url
from lerobot_wds.reader.retry import read_with_retries

if TYPE_CHECKING:
    from lerobot_wds.reader.stream import StreamConfig


@dataclass(frozen=True)
class OpenedRoot:
    """A converted root's manifest and task table (task_index -> task string)."""

    root: str
    manifest: Manifest
    tasks: dict[int, str]


def _read(url: str, stream: StreamConfig) -> bytes:
    """Reads a whole (small) file with the reader's retry policy and read timeout."""
    fs, path = fsspec.core.url_to_fs(url, **stream.fs_options(url))
    try:
        return read_with_retries(lambda: fs.cat_file(path), what=url, policy=stream.retry_policy())
    except FileNotFoundError as e:
        raise FormatError(
            f"{url}: not found; is this a converted lerobot-wds root (manifest written last)?"
        ) from e


def read_tasks(data: bytes, where: str) -> dict[int, str]:
    """Parses lerobot's tasks.parquet (pandas index ``task`` + column ``task_index``) into ``{index: task}``.

    The one parser of this layout: the converter reads its source's tasks with it too.

    Raises:
        FormatError: naming ``where`` when the file is not parquet or lacks the task strings or indices.
    """
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as e:
        raise FormatError(f"{where}: not a readable parquet file: {e}") from e
    meta = table.schema.pandas_metadata or {}
    index_cols = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    candidates = [*index_cols, "task", "__index_level_0__"]
    name = next((c for c in candidates if c in table.column_names), None)
    if name is None or "task_index" not in table.column_names:
        raise FormatError(
            f"{where}: expected a 'task_index' column and the task strings as index or 'task' column, "
            f"found columns {table.column_names}"
        )
    return dict(zip(table.column("task_index").to_pylist(), table.column(name).to_pylist(), strict=True))


def open_root(root: str, stream: StreamConfig) -> OpenedRoot:
    """Reads ``manifest.json`` and ``meta/tasks.parquet`` of a converted root (local path or fsspec URL).

    Reads retry transient errors as shard reads do (``stream``'s policy, read timeout and storage options).

    Raises:
        FormatError: a file is missing or not what the format says.
        RetryError: a read failed permanently (e.g. denied) or kept failing after ``stream.retries`` retries.
    """
    manifest_url = join_url(root, MANIFEST_NAME)
    manifest = Manifest.from_json_bytes(_read(manifest_url, stream), where=manifest_url)
    tasks_url = join_url(root, f"{META_DIR}/tasks.parquet")
    tasks = read_tasks(_read(tasks_url, stream), tasks_url)
    return OpenedRoot(root=root, manifest=manifest, tasks=tasks)


def manifest_summary(opened: OpenedRoot) -> dict[str, Any]:
    """A small JSON-able description of the root, for logs and reprs."""
    m = opened.manifest
    return json.loads(
        json.dumps(
            {
                "root": opened.root,
                "shards": len(m.shards),
                "episodes": m.total_episodes,
                "frames": m.total_frames,
                "cameras": m.camera_keys,
                "fps": m.fps,
            }
        )
    )
