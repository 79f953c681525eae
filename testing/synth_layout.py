"""LeRobot v3.0 on-disk metadata exactly as lerobot 0.6.1 writes it: parquet schemas, info.json, stats.

Used by the test-fixture factory. Each writer mirrors one lerobot code path (named in its docstring) so the
fixtures' schemas, column orders, dtypes and JSON keys equal those of a dataset lerobot wrote itself; the
conformance test checks this against lerobot's own output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE_PATTERN + ".parquet"
TASKS_PATH = "meta/tasks.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
# lerobot appends these to every dataset's features (lerobot.datasets.utils.DEFAULT_FEATURES).
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def next_chunk_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """Returns the next (chunk, file) pair, as ``lerobot.datasets.utils.update_chunk_file_indices``."""
    if file_index == chunks_size - 1:
        return chunk_index + 1, 0
    return chunk_index, file_index + 1


def write_json(data: dict[str, Any], path: Path) -> None:
    """Writes JSON like ``lerobot.datasets.io_utils.write_json`` (indent 4, non-ASCII kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=4, ensure_ascii=False)


def write_info(
    root: Path, *, fps: int, features: dict[str, Any], episodes: int, frames: int, tasks: int, chunks_size: int
) -> None:
    """Writes ``meta/info.json`` as lerobot 0.6.1 writes it for a v3.0 dataset of these totals."""
    info = {
        "codebase_version": "v3.0",
        "fps": fps,
        "features": features,
        "total_episodes": episodes,
        "total_frames": frames,
        "total_tasks": tasks,
        "chunks_size": chunks_size,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "robot_type": None,
        "splits": {"train": f"0:{episodes}"},
    }
    write_json(info, root / INFO_PATH)


def _hf_feature(ft: dict[str, Any]) -> dict[str, Any]:
    if tuple(ft["shape"]) == (1,):
        return {"dtype": ft["dtype"], "_type": "Value"}
    if len(ft["shape"]) != 1:
        raise ValueError(f"fixture factory only writes 1-D vector features, got shape {ft['shape']}")
    return {"feature": {"dtype": ft["dtype"], "_type": "Value"}, "length": ft["shape"][0], "_type": "List"}


def _arrow_type(ft: dict[str, Any]) -> pa.DataType:
    scalar = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    if tuple(ft["shape"]) == (1,):
        return scalar
    return pa.list_(pa.field("element", scalar), ft["shape"][0])


def data_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """Returns the schema of ``data/*.parquet`` rows: non-video features in order, with HF's metadata."""
    cols = {k: ft for k, ft in features.items() if ft["dtype"] not in ("video", "image")}
    hf = {"info": {"features": {k: _hf_feature(ft) for k, ft in cols.items()}}}
    fingerprint = hashlib.sha256(json.dumps(hf, sort_keys=True).encode()).hexdigest()[:16]
    meta = {b"huggingface": json.dumps({**hf, "fingerprint": fingerprint}).encode()}
    return pa.schema([pa.field(k, _arrow_type(ft)) for k, ft in cols.items()], metadata=meta)


class DataFileWriter:
    """Appends one row group per episode to a data parquet file, as lerobot's ParquetWriter path does."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self._writer = pq.ParquetWriter(path, schema=schema, compression="snappy", use_dictionary=True)

    def write_episode(self, columns: dict[str, np.ndarray]) -> None:
        arrays = []
        for f in self.schema:
            values = columns[f.name]
            if pa.types.is_fixed_size_list(f.type):
                flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=f.type.value_type)
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, type=f.type))
            else:
                arrays.append(pa.array(values, type=f.type))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self._writer.close()


def write_episodes_file(rows: list[dict[str, Any]], path: Path) -> None:
    """Writes ``meta/episodes/*.parquet`` via ``pa.Table.from_pydict`` of Python lists, as lerobot does."""
    combined: dict[str, list[Any]] = {}
    for row in rows:
        for key, value in row.items():
            combined.setdefault(key, []).append(value.tolist() if isinstance(value, np.ndarray) else value)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pydict(combined)
    with pq.ParquetWriter(path, schema=table.schema, compression="snappy", use_dictionary=True) as w:
        w.write_table(table)


def write_tasks(tasks: list[str], path: Path) -> None:
    """Writes ``meta/tasks.parquet`` as ``DataFrame({"task_index": ...}, index=Index(tasks, name="task"))``.

    pandas is not a dependency here, so the pandas metadata that lets ``pd.read_parquet`` restore the
    ``task`` index is written directly (the same JSON pandas' ``to_parquet`` stores).
    """
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "task",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.3.3",
    }
    schema = pa.schema(
        [pa.field("task_index", pa.int64()), pa.field("task", pa.string())],
        metadata={b"pandas": json.dumps(pandas_meta).encode()},
    )
    table = pa.Table.from_arrays(
        [pa.array(range(len(tasks)), pa.int64()), pa.array(tasks, pa.string())], schema=schema
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def feature_stats(values: np.ndarray, *, axes: tuple[int, ...], keepdims: bool) -> dict[str, np.ndarray]:
    """Returns min/max/mean/std/count/q01..q99 over ``axes``, the keys and shapes lerobot stores.

    Quantiles use numpy's interpolation rather than lerobot's histogram estimate: the values are
    statistics for normalisation, which no conversion or reader path depends on.
    """
    v = values.astype(np.float64)
    stats: dict[str, np.ndarray] = {
        "min": v.min(axis=axes, keepdims=keepdims),
        "max": v.max(axis=axes, keepdims=keepdims),
        "mean": v.mean(axis=axes, keepdims=keepdims),
        "std": v.std(axis=axes, keepdims=keepdims),
        "count": np.array([len(values)], dtype=np.int64),
    }
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.quantile(v, q, axis=axes, keepdims=keepdims)
    return stats


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of (N, H, W, 3) uint8 frames in [0, 1], shaped (3, 1, 1) like lerobot's."""
    chw = np.transpose(frames, (0, 3, 1, 2)).astype(np.float64) / 255.0
    stats = feature_stats(chw, axes=(0, 2, 3), keepdims=True)
    return {k: (v if k == "count" else v[0]) for k, v in stats.items()}


def aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Merges episode stats like ``lerobot.datasets.compute_stats.aggregate_stats`` (pooled, count-weighted)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in per_episode[0]:
        items = [s[key] for s in per_episode]
        counts = np.stack([s["count"] for s in items])
        total = counts.sum(axis=0)
        means = np.stack([s["mean"] for s in items])
        w = counts.reshape(counts.shape + (1,) * (means.ndim - counts.ndim))
        mean = (means * w).sum(axis=0) / total
        var = ((np.stack([s["std"] ** 2 for s in items]) + (means - mean) ** 2) * w).sum(axis=0) / total
        agg = {
            "min": np.min(np.stack([s["min"] for s in items]), axis=0),
            "max": np.max(np.stack([s["max"] for s in items]), axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": total,
        }
        for q in [k for k in items[0] if k.startswith("q")]:
            agg[q] = (np.stack([s[q] for s in items]) * w).sum(axis=0) / total
        out[key] = agg
    return out


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """Serialises stats like ``lerobot.datasets.utils.serialize_dict`` (arrays to nested lists)."""
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def flatten_stats(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Returns ``stats/<feature>/<stat>`` columns of an episodes row, as lerobot's ``flatten_dict``."""
    return {f"stats/{k}/{s}": v for k, d in stats.items() for s, v in d.items()}
