"""One episode as the reader holds it: metadata, its rows as torch tensors and its mini-MP4 bytes.

Turns a webdataset sample (``{"__key__", "__url__", "json", "parquet", "<camera>.mp4"}``) into an
:class:`Episode`, validating it against the contract. Row columns are converted once per episode with the
same dtype rules as lerobot's ``hf_transform_to_torch`` (python scalars through ``torch.tensor``): floats
become float32, integers int64, booleans bool, strings stay strings.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import (
    EpisodeMeta,
    Violation,
    episode_index_from_key,
    member_violations,
    meta_violations,
    row_violations,
    video_suffix,
)
from lerobot_wds.reader.errors import ShardFormatError


@dataclass
class Episode:
    """A parsed episode sample. ``columns`` holds per-row values: a tensor [L, ...] or a list of objects.

    ``anchors`` is the range of anchor frames this reader yields (the planner may split an episode's anchors
    between two readers); None means all of them. ``order`` (``(first, last)``) keeps only the positions
    ``[first, last)`` of the order those anchors are served in (an elastic resume's piece); None: all.
    """

    meta: EpisodeMeta
    columns: dict[str, torch.Tensor | list[Any]]
    videos: dict[str, bytes]
    where: str
    anchors: tuple[int, int] | None = None
    order: tuple[int, int] | None = None

    @property
    def index(self) -> int:
        return self.meta.episode_index

    @property
    def length(self) -> int:
        return self.meta.length

    @property
    def anchor_range(self) -> tuple[int, int]:
        return self.anchors if self.anchors is not None else (0, self.length)


def _torch_dtype(arrow_type: pa.DataType) -> torch.dtype | None:
    base = arrow_type
    while pa.types.is_list(base) or pa.types.is_fixed_size_list(base) or pa.types.is_large_list(base):
        base = base.value_type
    if pa.types.is_floating(base):
        return torch.float32
    if pa.types.is_integer(base):
        return torch.int64
    if pa.types.is_boolean(base):
        return torch.bool
    return None


def column_values(column: pa.ChunkedArray, where: str, name: str) -> torch.Tensor | list[Any]:
    """Converts one parquet column to a [L, ...] tensor (lerobot's dtypes) or a python list."""
    dtype = _torch_dtype(column.type)
    try:
        values = column.to_pylist()  # strings are decoded here: invalid UTF-8 raises UnicodeDecodeError
        if dtype is None:
            return values
        array = np.asarray(values)
        if array.dtype == object:
            raise ValueError("ragged or null values")
        # float64 -> float32 rounds to nearest, exactly like torch.tensor(python_float).
        return torch.from_numpy(array).to(dtype)
    except (ValueError, TypeError) as e:
        raise ShardFormatError(
            f"{where}: column {name!r} of type {column.type} is not a regular array: {e}"
        ) from e


def parse_episode(sample: dict[str, Any], camera_keys: list[str], fps: float | None = None) -> Episode:
    """Validates one webdataset sample against the episode contract and parses it into an :class:`Episode`.

    The checks are :mod:`format`'s (``member_violations``, ``meta_violations``, ``row_violations``, the ones
    ``verify`` reports in full); the reader stops at the first.

    Raises:
        ShardFormatError: naming the shard, sample and member, what was expected and what was found.
    """
    key = sample.get("__key__", "?")
    url = sample.get("__url__", "?")
    where = f"shard {url}, sample {key}"
    try:
        episode = episode_index_from_key(key)
    except FormatError as e:
        raise ShardFormatError(f"shard {url}: {e}") from e
    suffixes = [k for k in sample if not k.startswith("_")]
    found = f" (found {sorted(f'{key}.{s}' for s in suffixes)})"
    _raise_first(member_violations(key, suffixes, camera_keys), where, found)
    meta = EpisodeMeta.from_json_bytes(sample["json"], where=f"{where}, member {key}.json")
    _raise_first(
        meta_violations(meta, episode=episode, fps=fps, camera_keys=camera_keys, member=f"{key}.json"), where
    )
    member = f"{key}.parquet"
    try:
        table = pq.read_table(io.BytesIO(sample["parquet"]))
        names = table.column_names  # decoded lazily: a corrupt name raises UnicodeDecodeError (a ValueError)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ShardFormatError(f"{where}, member {member}: not a readable parquet file: {e}") from e
    columns = {name: column_values(table.column(name), where, name) for name in names}
    ints = {
        n: v.numpy() if isinstance(v, torch.Tensor) and v.dtype == torch.int64 else None
        for n, v in columns.items()
    }
    _raise_first(row_violations(meta, table.num_rows, ints, member), where)
    videos = {cam: sample[video_suffix(cam)] for cam in camera_keys}
    return Episode(meta=meta, columns=columns, videos=videos, where=where)


def _raise_first(violations: Iterator[Violation], where: str, found: str = "") -> None:
    v = next(violations, None)
    if v is not None:
        camera = f", camera {v.camera}" if v.camera and not v.member else ""
        raise ShardFormatError(f"{where}{camera}, member {v.member}: {v.message}{found}")
