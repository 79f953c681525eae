"""Reading many episodes' rows of one data file in one read: each episode gets exactly its rows, whether it
spans row groups, shares one, or its file has no statistics; a wrong episode maps to its own error."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lerobot_wds.convert.errors import SourceError
from lerobot_wds.convert.source.rows import RowGroupIndex, RowRequest, read_episodes

# episode -> rows; written as row groups [0:3] [3:7] [7:10] [10:12]: episode 0 spans two groups, the second
# group holds the end of episode 0 and all of episode 1
LENGTHS = {0: 5, 1: 2, 2: 3, 5: 2}


def _file(statistics: bool) -> tuple[bytes, pa.Table]:
    eps = [e for e, n in LENGTHS.items() for _ in range(n)]
    table = pa.table(
        {"episode_index": eps, "index": list(range(len(eps))), "x": [float(i) for i in range(len(eps))]}
    )
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema, write_statistics=statistics) as w:
        for lo, hi in ((0, 3), (3, 7), (7, 10), (10, 12)):
            w.write_table(table.slice(lo, hi - lo))
    return buf.getvalue(), table


def _request(table: pa.Table, ep: int, length: int | None = None) -> RowRequest:
    idx = table.filter(pc.equal(table.column("episode_index"), ep)).column("index").to_pylist() or [0]
    return RowRequest(ep, LENGTHS.get(ep, 0) if length is None else length, range(idx[0], idx[-1] + 1))


@pytest.mark.parametrize("statistics", [True, False])
def test_each_episode_gets_exactly_its_rows(statistics):
    data, table = _file(statistics)
    md = pq.read_metadata(io.BytesIO(data))
    index = RowGroupIndex.from_footer(md, "mem.parquet")
    assert index.groups_of(0) == ([0, 1] if statistics else [0, 1, 2, 3])
    reqs = [_request(table, 2), _request(table, 0), _request(table, 1), _request(table, 5, length=3)]
    reqs.append(RowRequest(7, 1, range(0, 1)))
    out = read_episodes(lambda: io.BytesIO(data), md, index, reqs, "mem.parquet")
    for ep in (0, 1, 2):
        assert out[ep].equals(table.filter(pc.equal(table.column("episode_index"), ep))), ep
    assert isinstance(out[5], SourceError) and "episode 5: 2 rows, meta/episodes says length 3" in str(out[5])
    assert isinstance(out[7], SourceError) and "episode 7: 0 rows, meta/episodes says length 1" in str(out[7])
