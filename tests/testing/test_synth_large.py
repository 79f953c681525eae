"""Tests of the large-source generator: lerobot's layout (files, row groups, episode table) and decodable video."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from torchcodec.decoders import VideoDecoder

from lerobot_wds.convert.episode import build_episode
from lerobot_wds.convert.source import LeRobotSource
from lerobot_wds.testing.synth_identity import read_identity_full
from lerobot_wds.testing.synth_large import LargeSourceSpec, make_large_source

SPEC = LargeSourceSpec(
    episodes=23, min_frames=3, max_frames=7, episodes_per_data_file=10, episodes_per_video_file=8
)


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    return make_large_source(SPEC, tmp_path_factory.mktemp("large") / "src")


def test_layout_files_and_row_groups(large):
    data = sorted(p.relative_to(large).as_posix() for p in (large / "data").rglob("*.parquet"))
    assert data == [f"data/chunk-000/file-{i:03d}.parquet" for i in range(3)]
    for cam in ("front", "wrist"):
        videos = sorted(p.name for p in (large / "videos" / f"observation.images.{cam}").rglob("*.mp4"))
        assert videos == ["file-000.mp4", "file-001.mp4", "file-002.mp4"]
    groups = []
    for path in data:
        md = pq.read_metadata(large / path)
        col = md.schema.names.index("episode_index")
        for g in range(md.num_row_groups):  # one row group per episode, as lerobot writes them
            st = md.row_group(g).column(col).statistics
            assert st.min == st.max
            assert md.row_group(g).num_rows == SPEC.length(st.min)
            groups.append(st.min)
    assert groups == list(range(23))
    info = json.loads((large / "meta/info.json").read_text())
    assert info["total_episodes"] == 23
    assert info["total_frames"] == sum(SPEC.length(e) for e in range(23))


def test_episode_table_spans(large):
    rows = pq.read_table(large / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["episode_index"] for r in rows] == list(range(23))
    assert [r["length"] for r in rows] == [SPEC.length(e) for e in range(23)]
    assert sorted({r["length"] for r in rows}) == [3, 4, 5, 6, 7]
    r9 = rows[9]  # the last episode of data file 0 (10 per file), the second of video file 1 (8 per file)
    assert (r9["data/file_index"], r9["videos/observation.images.front/file_index"]) == (0, 1)
    assert r9["videos/observation.images.front/from_timestamp"] == pytest.approx(SPEC.length(8) / 10)
    assert r9["videos/observation.images.front/to_timestamp"] == pytest.approx(
        (SPEC.length(8) + SPEC.length(9)) / 10
    )
    assert r9["dataset_from_index"] == sum(SPEC.length(e) for e in range(9))


def test_episodes_convert_and_decode_to_the_template(large):
    source = LeRobotSource(str(large))
    for ep in (0, 9, 22):
        sample = build_episode(source, ep)
        members = dict(sample.members)
        rows = pq.read_table(io.BytesIO(members[f"episode_{ep:06d}.parquet"]))
        assert rows.column("episode_index").to_pylist() == [ep] * SPEC.length(ep)
        for ci, cam in enumerate(("front", "wrist")):
            mp4 = members[f"episode_{ep:06d}.observation.images.{cam}.mp4"]
            frames = VideoDecoder(mp4).get_frames_in_range(0, SPEC.length(ep)).data
            ids = [read_identity_full(np.asarray(f)) for f in frames]
            # every episode shows the camera's template clip: identity (episode 0, frame k, camera)
            assert ids == [(0, k, ci) for k in range(SPEC.length(ep))]


def test_spec_rejects_bad_values():
    with pytest.raises(ValueError, match="min_frames <= max_frames"):
        LargeSourceSpec(episodes=3, min_frames=5, max_frames=4)
    with pytest.raises(ValueError, match="episodes_per_data_file must be >= 1, got 0"):
        LargeSourceSpec(episodes=3, episodes_per_data_file=0)
