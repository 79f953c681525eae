"""Finding and checking an episode's rows in a data parquet file: a row-group index built once per file.

LeRobot writes one row group per episode, and a data file can hold thousands of them. :class:`RowGroupIndex`
keeps each row group's ``episode_index`` range as two integer arrays (16 bytes a row group), so finding an
episode's row groups is one vectorized comparison instead of a walk over every row group's statistics.
:func:`read_episodes` reads many episodes of one file through one open handle and one parsed footer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_wds.convert.errors import SourceError

# A row group without usable statistics may hold any episode.
_ANY_LO, _ANY_HI = np.iinfo(np.int64).min, np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class RowGroupIndex:
    """Each row group's smallest and largest ``episode_index`` of one data file."""

    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def from_footer(cls, md: pq.FileMetaData, where: str) -> RowGroupIndex:
        """Builds the index from a parsed footer; SourceError if the file lacks the columns rows are found by."""
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        if "episode_index" not in names or "index" not in names:
            raise SourceError(f"{where}: no 'episode_index'/'index' column (found {names})")
        col = names.index("episode_index")
        lo = np.full(md.num_row_groups, _ANY_LO, dtype=np.int64)
        hi = np.full(md.num_row_groups, _ANY_HI, dtype=np.int64)
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(col).statistics
            if st is not None and st.has_min_max:
                lo[g], hi[g] = st.min, st.max
        return cls(lo, hi)

    def groups_of(self, episode_index: int) -> list[int]:
        """The row groups whose statistics can contain ``episode_index``, in file order."""
        return np.flatnonzero((self.lo <= episode_index) & (episode_index <= self.hi)).tolist()


def check_rows(table: pa.Table, episode_index: int, length: int, index_range: range, where: str) -> pa.Table:
    """Returns the rows of ``episode_index`` in ``table``; SourceError if their count or ``index`` run is wrong."""
    table = table.filter(pc.equal(table.column("episode_index"), episode_index))
    if table.num_rows != length:
        raise SourceError(f"{where}: {table.num_rows} rows, meta/episodes says length {length}")
    index = table.column("index").to_pylist()
    if index != list(index_range):
        raise SourceError(
            f"{where}: row 'index' runs {index[:1]}..{index[-1:]}, expected "
            f"{index_range.start}..{index_range.stop - 1} in order"
        )
    return table


@dataclass(frozen=True)
class RowRequest:
    """One episode whose rows are wanted: its index, length and ``dataset_from/to_index``."""

    episode_index: int
    length: int
    index_range: range


def read_episodes(
    open_file: Callable[[], Any],
    md: pq.FileMetaData,
    index: RowGroupIndex,
    requests: Iterable[RowRequest],
    where: str,
) -> dict[int, pa.Table | SourceError]:
    """Reads the requested episodes' row groups in one read; a bad episode maps to its error.

    Each episode takes exactly the row groups :meth:`RowGroupIndex.groups_of` names (slices of the one read),
    then is filtered and checked by :func:`check_rows`, so its table equals what a read of that episode alone
    returns.
    """
    out: dict[int, pa.Table | SourceError] = {}
    requests = list(requests)
    wanted = {req.episode_index: index.groups_of(req.episode_index) for req in requests}
    groups = sorted({g for gs in wanted.values() for g in gs})
    with open_file() as f:
        # one read of every row group the episodes need (a read per episode costs ~10x more in pyarrow)
        whole = pq.ParquetFile(f, metadata=md).read_row_groups(groups)
    starts, at_row = {}, 0
    for g in groups:
        starts[g] = at_row
        at_row += md.row_group(g).num_rows
    for req in requests:
        parts = [whole.slice(starts[g], md.row_group(g).num_rows) for g in wanted[req.episode_index]]
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts) if parts else whole.slice(0, 0)
        at = f"{where}, episode {req.episode_index}"
        try:
            out[req.episode_index] = check_rows(table, req.episode_index, req.length, req.index_range, at)
        except SourceError as e:
            out[req.episode_index] = e
    return out
