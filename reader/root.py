"""Opening a converted root: its manifest (the only thing trusted) and the task names from meta/tasks.parquet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import MANIFEST_NAME, META_DIR, Manifest
from lerobot_wds.core.retry import read_with_retries
from lerobot_wds.core.tasks import read_tasks
from lerobot_wds.core.urls import join_url, split_query
from lerobot_wds.reader.fetching.filesystems import open_fs
from lerobot_wds.reader.wrong_root import missing_manifest_error

if TYPE_CHECKING:
    from lerobot_wds.reader.fetching.fetch import StreamConfig


@dataclass(frozen=True)
class OpenedRoot:
    """A converted root's manifest and task table (task_index -> task string)."""

    root: str
    manifest: Manifest
    tasks: dict[int, str]


def _read(url: str, stream: StreamConfig) -> bytes:
    """Reads a whole (small) file with the reader's retry policy and read timeout."""
    fs, path = open_fs(url, stream.fs_options(url))
    try:
        return read_with_retries(lambda: fs.cat_file(path), what=url, policy=stream.retry_policy())
    except FileNotFoundError as e:
        raise FormatError(f"{url}: not found; the manifest lists it") from e


def _read_manifest(root: str, stream: StreamConfig) -> bytes:
    """Reads ``manifest.json``; a root without one is an :class:`InputError` saying what the root is instead."""
    url = join_url(root, MANIFEST_NAME)
    fs, path = open_fs(url, stream.fs_options(url))
    try:
        return read_with_retries(lambda: fs.cat_file(path), what=url, policy=stream.retry_policy())
    except FileNotFoundError:
        base, query = split_query(path)  # a signed root's query stays on every probe of what the root holds
        raise missing_manifest_error(fs, base.rpartition("/")[0] + query, root) from None


def open_root(root: str, stream: StreamConfig) -> OpenedRoot:
    """Reads ``manifest.json`` and ``meta/tasks.parquet`` of a converted root (local path or fsspec URL).

    Reads retry transient errors as shard reads do (``stream``'s policy, read timeout and storage options).

    Raises:
        InputError: ``root`` is no finished conversion (missing, a LeRobot source, unfinished...; see
            :mod:`roots`).
        FormatError: a file is missing or not what the format says.
        RetryError: a read failed permanently (e.g. denied) or kept failing after ``stream.retries`` retries.
    """
    manifest_url = join_url(root, MANIFEST_NAME)
    manifest = Manifest.from_json_bytes(_read_manifest(root, stream), where=manifest_url)
    tasks_url = join_url(root, f"{META_DIR}/tasks.parquet")
    tasks = read_tasks(_read(tasks_url, stream), tasks_url)
    return OpenedRoot(root=root, manifest=manifest, tasks=tasks)
