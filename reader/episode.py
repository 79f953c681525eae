"""One episode as the reader holds it: metadata, its rows as torch tensors and its mini-MP4 bytes.

Turns a webdataset sample (``{"__key__", "__url__", "json", "parquet", "<camera>.mp4"}``) into an
:class:`Episode`, validating it against the contract. Row columns are converted once per episode with the
same dtype rules as lerobot's ``hf_transform_to_torch`` (python scalars through ``torch.tensor``): floats
become float32, integers int64, booleans bool, strings stay strings.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from lerobot_wds.reader.errors import ShardFormatError
from lerobot_wds.reader.format import EpisodeMeta, FormatError, episode_index_from_key, video_suffix


@dataclass
class Episode:
    """A parsed episode sample. ``columns`` holds per-row values: a tensor [L, ...] or a list of objects.

    ``anchors`` is the range of anchor frames this reader yields (the planner may split an episode's anchors
    between two readers); None means all of them.
    """

    meta: EpisodeMeta
    columns: dict[str, torch.Tensor | list[Any]]
    videos: dict[str, bytes]
    where: str
    anchors: tuple[int, int] | None = None

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
    values = column.to_pylist()
    if dtype is None:
        return values
    try:
        array = np.asarray(values)
        if array.dtype == object:
            raise ValueError("ragged or null values")
        # float64 -> float32 rounds to nearest, exactly like torch.tensor(python_float).
        return torch.from_numpy(array).to(dtype)
    except (ValueError, TypeError) as e:
        raise ShardFormatError(
            f"{where}: column {name!r} of type {column.type} is not a regular array: {e}"
        ) from e


def parse_episode(sample: dict[str, Any], camera_keys: list[str]) -> Episode:
    """Validates and parses one webdataset sample into an :class:`Episode`.

    Raises:
        ShardFormatError: naming the shard and member on a missing member, bad JSON, bad parquet or rows that
            disagree with the metadata.
    """
    key = sample.get("__key__", "?")
    url = sample.get("__url__", "?")
    where = f"shard {url}, sample {key}"
    try:
        ep_from_key = episode_index_from_key(key)
    except FormatError as e:
        raise ShardFormatError(f"shard {url}: {e}") from e
    missing = [
        f"{key}.{s}" for s in ["json", "parquet", *(video_suffix(c) for c in camera_keys)] if s not in sample
    ]
    if missing:
        raise ShardFormatError(
            f"{where}: missing members {missing}; found {sorted(k for k in sample if k[0] != '_')}"
        )
    meta = EpisodeMeta.from_json_bytes(sample["json"], where=f"{where}, member {key}.json")
    if meta.episode_index != ep_from_key:
        raise ShardFormatError(
            f"{where}: {key}.json says episode_index {meta.episode_index}, key says {ep_from_key}"
        )
    missing_cams = sorted(set(camera_keys) - set(meta.cameras))
    if missing_cams:
        raise ShardFormatError(f"{where}: {key}.json has no camera metadata for {missing_cams}")
    try:
        table = pq.read_table(io.BytesIO(sample["parquet"]))
    except (pa.ArrowException, OSError) as e:
        raise ShardFormatError(f"{where}, member {key}.parquet: not a readable parquet file: {e}") from e
    if table.num_rows != meta.length:
        raise ShardFormatError(
            f"{where}, member {key}.parquet: {table.num_rows} rows, expected length {meta.length} from {key}.json"
        )
    columns = {name: column_values(table.column(name), where, name) for name in table.column_names}
    _check_rows(columns, meta, where)
    videos = {cam: sample[video_suffix(cam)] for cam in camera_keys}
    return Episode(meta=meta, columns=columns, videos=videos, where=where)


def _check_rows(columns: dict[str, torch.Tensor | list[Any]], meta: EpisodeMeta, where: str) -> None:
    expected = {
        "frame_index": torch.arange(meta.length),
        "episode_index": torch.full((meta.length,), meta.episode_index),
        "index": torch.arange(meta.dataset_from_index, meta.dataset_to_index),
    }
    for name, want in expected.items():
        got = columns.get(name)
        if not isinstance(got, torch.Tensor) or got.shape != want.shape or not torch.equal(got, want):
            shown = got[:5].tolist() if isinstance(got, torch.Tensor) else got
            raise ShardFormatError(
                f"{where}: rows column {name!r} should be {want[:5].tolist()}... ({meta.length} rows), "
                f"found {shown}"
            )
