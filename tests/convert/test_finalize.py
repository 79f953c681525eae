"""``finalize`` merges part manifests by streaming: the manifest of the in-memory merge, byte for byte, while
memory holds one part at a time (the split written by ``tools/finalize_bench.py``)."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from lerobot_wds.convert.errors import FinalizeError
from lerobot_wds.convert.manifest_io import PartManifest, finalize, part_path
from lerobot_wds.convert.sink import open_sink
from lerobot_wds.core.format import Manifest
from lerobot_wds.tools.finalize_bench import write_split

EPISODES, SHARDS, PARTS = 20_000, 40, 20


def _in_memory_manifest(root) -> Manifest:
    """The manifest as one object: every part's shards sorted by path, empty shards left out."""
    parts = [
        PartManifest.from_json_bytes((root / part_path(i, PARTS)).read_bytes(), where="part") for i in range(PARTS)
    ]
    p = parts[0]
    shards = sorted((s for q in parts for s in q.shards if s.episodes), key=lambda s: s.path)
    skipped = sorted((s for q in parts for s in q.skipped), key=lambda s: s["episode_index"])
    return Manifest(p.fps, p.features, p.camera_keys, shards, p.source, p.options, skipped)


def test_finalize_streams_the_parts_into_the_same_bytes(tmp_path):
    write_split(tmp_path, EPISODES, SHARDS, PARTS)
    expected = _in_memory_manifest(tmp_path).to_json_bytes()
    tracemalloc.start()
    try:
        done = finalize(open_sink(str(tmp_path)), part_count=PARTS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    written = (tmp_path / "manifest.json").read_bytes()
    assert written == expected
    assert (done.totals.shards, done.totals.episodes, done.totals.frames, done.skipped) == (40, 20_000, 200_000, 0)
    assert json.loads(written)["totals"]["episodes"] == 20_000
    # one part (1,000 episodes, 2 shards) is in memory at a time, never the 3.9 MB manifest's objects
    assert len(written) > 3_800_000
    assert peak < len(written) // 2, f"finalize peaked at {peak / 1e6:.1f} MB of Python objects"


def test_finalize_names_a_shard_of_the_wrong_size(tmp_path):
    write_split(tmp_path, 200, 4, 2)
    with open(tmp_path / "shards" / "shard-000003.tar", "r+b") as f:
        f.truncate(10)
    with pytest.raises(FinalizeError, match=r"shards/shard-000003\.tar: expected 487424 bytes, found 10 bytes"):
        finalize(open_sink(str(tmp_path)))
    assert not (tmp_path / "manifest.json").exists()
