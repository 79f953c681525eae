"""The converter on generated sources of many episodes: each data file read once per shard, memory flat.

Sources come from :mod:`lerobot_wds.testing.synth_large` (lerobot's layout: one row group per episode, many
episodes per data file). Reads are counted by the loopback HTTP server serving the source.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from convert_helpers import output_bytes

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.testing.synth_large import LargeSourceSpec, make_large_source

ONE_CAM = LargeSourceSpec(episodes=1).cameras[:1]


def _data_gets(server, src) -> dict[str, int]:
    paths = ["/" + p.relative_to(src).as_posix() for p in sorted((src / "data").rglob("*.parquet"))]
    log = server.stats().log
    return {p: sum(r.path == p and r.method == "GET" for r in log) for p in paths}


def test_rows_are_read_per_shard_and_file_not_per_episode(tmp_path, http_dir_server):
    """300 episodes in 2 data files, shuffled over 3 shards: each shard opens each data file about once
    (a footer read plus one read of its row groups), never once per episode (150 episodes a file)."""
    spec = LargeSourceSpec(episodes=300, cameras=ONE_CAM, min_frames=2, max_frames=3, episodes_per_data_file=150)
    src = make_large_source(spec, tmp_path / "src")
    convert(
        ConvertConfig(source=str(src), dest=str(tmp_path / "ref"), progress=False, target_shard_bytes=1_300_000)
    )
    shards = len(list((tmp_path / "ref" / "shards").glob("*.tar")))
    assert shards == 3
    server = http_dir_server(src)
    convert(
        ConvertConfig(
            source=server.url, dest=str(tmp_path / "out"), progress=False, target_shard_bytes=1_300_000, workers=2
        )
    )
    shard_bytes = {k: v for k, v in output_bytes(tmp_path / "out").items() if k.startswith("shards/")}
    assert shard_bytes == {k: v for k, v in output_bytes(tmp_path / "ref").items() if k.startswith("shards/")}
    gets = _data_gets(server, src)
    assert len(gets) == 2
    # per shard and file: at most 3 runs of 64 episodes, each a ranged read of the rows, plus footer reads
    for path, n in gets.items():
        assert 1 <= n <= shards * 8, f"{path}: {n} GETs for 150 episodes over {shards} shards"


@pytest.mark.slow
def test_peak_rss_of_10k_episodes_over_100_files_stays_flat(tmp_path):
    """10,000 episodes over 100 data files (100 row groups each), shuffled: the converter's own peak RSS (from
    the conversion's start, as ``--stats-json`` reports it) stays within a bound that does not grow with the
    dataset: 250 MB over the RSS it started at (about 120 MB are measured at 10^4 and 10^5 episodes alike)."""
    spec = LargeSourceSpec(
        episodes=10_000, cameras=ONE_CAM, min_frames=3, max_frames=5, episodes_per_data_file=100
    )
    src = make_large_source(spec, tmp_path / "src")
    stats = tmp_path / "stats.json"
    cmd = [sys.executable, "-m", "lerobot_wds.tools.cli", "convert", str(src), str(tmp_path / "out")]
    cmd += ["--no-progress", "--workers", "2", "--shard-size", "8MB", "--stats-json", str(stats)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    s = json.loads(stats.read_text())
    assert s["episodes"] == 10_000
    grown = s["peak_rss_bytes"] - s["start_rss_bytes"]
    assert grown < 250e6, (
        f"peak RSS grew {grown / 1e6:.0f} MB over its start ({s['start_rss_bytes'] / 1e6:.0f} MB)"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "meta", "shards"]


def test_each_camera_file_index_is_parsed_once_per_part(tmp_path):
    """140 episodes in 70 camera files (2 episodes each, more files than a 64-entry cache), shuffled over 4
    shards: every file's MP4 index is parsed exactly once by a single run and once by each part that reads it."""
    spec = LargeSourceSpec(
        episodes=140,
        cameras=ONE_CAM,
        min_frames=2,
        max_frames=2,
        episodes_per_data_file=140,
        episodes_per_video_file=2,
    )
    src = make_large_source(spec, tmp_path / "src")
    assert len(list((src / "videos").rglob("*.mp4"))) == 70
    opts = {"source": str(src), "progress": False, "target_shard_bytes": 200_000, "workers": 2}
    single = convert(ConvertConfig(dest=str(tmp_path / "one"), **opts))
    assert single.shards_written >= 4 and single.mp4_indexes_parsed == 70
    assert "; 70 MP4 indexes parsed" in single.line()
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_bytes())
    for i in range(2):
        part = convert(ConvertConfig(dest=str(tmp_path / "parts"), part_index=i, part_count=2, **opts))
        files = {
            ext["episode"] // 2 for k, s in enumerate(manifest["shards"]) if k % 2 == i for ext in s["extents"]
        }
        assert part.mp4_indexes_parsed == len(files)
