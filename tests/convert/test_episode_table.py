"""The source's episode table: compact columns (bytes per episode, not kilobytes), the same records and
fingerprint as the meta parquet rows, and ``--part i/N`` conversions that together equal a single run."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from convert_helpers import output_bytes

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.manifest_io import finalize
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.convert.sink import open_sink
from lerobot_wds.convert.source import LeRobotSource, describe
from lerobot_wds.testing.synth_large import LargeSourceSpec, make_large_source

ONE_CAM = LargeSourceSpec(episodes=1).cameras[:1]
SPEC = LargeSourceSpec(episodes=3000, cameras=ONE_CAM, min_frames=2, max_frames=4, episodes_per_data_file=500)


@pytest.fixture(scope="module")
def source_root(tmp_path_factory):
    return make_large_source(SPEC, tmp_path_factory.mktemp("table") / "src")


def _meta_rows(root) -> list[dict]:
    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()


def test_table_holds_a_few_bytes_per_episode(source_root):
    """3,000 episodes, one camera: 60 bytes of columns an episode (4 int64, 2 int32 codes, one camera's path
    code and two float64 times), and what the source keeps of its load stays within 100 bytes an episode."""
    LeRobotSource(str(source_root))  # imports and first-use caches out of the count
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        source = LeRobotSource(str(source_root))
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 3000 * 100, f"the source keeps {kept / 3000:.0f} bytes an episode"
    table = source.episodes
    assert len(table) == 3000 and table.nbytes == 3000 * 60
    assert len(table.paths) == 6 + 6  # 6 data files and 6 camera files, each path stored once


def test_records_and_fingerprint_equal_the_meta_rows(source_root):
    source = LeRobotSource(str(source_root))
    rows = _meta_rows(source_root)
    assert list(source.episodes) == list(range(3000)) == [r["episode_index"] for r in rows]
    cam = ONE_CAM[0].key
    for row in rows[::97] + rows[-1:]:
        rec = source.episodes[row["episode_index"]]
        assert (rec.length, rec.dataset_from_index, rec.dataset_to_index, rec.tasks) == (
            row["length"],
            row["dataset_from_index"],
            row["dataset_to_index"],
            tuple(row["tasks"]),
        )
        assert rec.data_path == f"data/chunk-000/file-{row['data/file_index']:03d}.parquet"
        v = rec.videos[cam]
        assert (v.from_timestamp, v.to_timestamp) == (
            row[f"videos/{cam}/from_timestamp"],
            row[f"videos/{cam}/to_timestamp"],
        )
    assert 3000 not in source.episodes and source.episodes.get(-1) is None
    # the fingerprint is the sha256 of the whole table's JSON, though it is hashed row by row
    whole = [
        [
            r.episode_index,
            r.length,
            list(r.tasks),
            r.dataset_from_index,
            r.dataset_to_index,
            r.data_path,
            {c: [v.path, v.from_timestamp, v.to_timestamp] for c, v in sorted(r.videos.items())},
        ]
        for r in source.episodes.values()
    ]
    expected = hashlib.sha256(json.dumps(whole, sort_keys=True).encode()).hexdigest()
    assert describe(source)["episodes_sha256"] == expected


def test_parts_of_a_shuffled_conversion_equal_a_single_run(source_root, tmp_path):
    """Three parts of a shuffled 3,000-episode conversion: each converts exactly its shards' episodes, and
    together with ``finalize`` they write the single run's shards and manifest byte for byte."""
    opts = {"progress": False, "target_shard_bytes": 1_000_000, "workers": 2}
    single = convert(ConvertConfig(source=str(source_root), dest=str(tmp_path / "single"), **opts))
    done = [
        convert(
            ConvertConfig(
                source=str(source_root), dest=str(tmp_path / "parts"), part_index=i, part_count=3, **opts
            )
        )
        for i in range(3)
    ]
    finalize(open_sink(str(tmp_path / "parts")))
    manifest = json.loads((tmp_path / "single" / "manifest.json").read_bytes())
    shards = manifest["shards"]
    assert single.shards_written == len(shards) >= 6
    for i, s in enumerate(done):
        mine = [sh for k, sh in enumerate(shards) if k % 3 == i]
        assert (s.shards_written, s.episodes) == (len(mine), sum(len(sh["episodes"]) for sh in mine))
    assert sum(s.episodes for s in done) == 3000
    assert output_bytes(tmp_path / "parts") == output_bytes(tmp_path / "single")
