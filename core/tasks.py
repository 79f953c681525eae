"""The parser of lerobot's ``meta/tasks.parquet``, shared by the converter (its source) and the reader (a root)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_wds.core.errors import FormatError


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
