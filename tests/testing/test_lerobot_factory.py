"""Tests of the LeRobot v3.0 fixture factory: layout, rows, metadata, codec properties, decodable identity."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from torchcodec.decoders import VideoDecoder

from lerobot_wds.testing.synth import CAMS_2, CameraSpec, LeRobotFixture, LeRobotSpec, expected_state, make_dataset
from lerobot_wds.testing.synth_identity import IdentityError, make_frame, read_identity, read_identity_full

VIDEO_STATS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")


def _episode_rows(fx: LeRobotFixture) -> list[dict]:
    files = sorted((fx.root / "meta" / "episodes").rglob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def _top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    out, i = [], 0
    while i < len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        out.append(kind.decode())
        i += size
    return out


def _packets(path: Path) -> list[tuple[int, int, bool]]:
    """(pts, dts, keyframe) of every video packet in decode order."""
    with av.open(str(path)) as c:
        return [(p.pts, p.dts, p.is_keyframe) for p in c.demux(video=0) if p.size > 0]


# --- frame identity -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 64), (96, 72), (80, 64), (32, 72)])
def test_identity_roundtrip_raw(size):
    w, h = size
    for ep, fr, cam in [(0, 0, 0), (5, 39, 2), (4095, 4095, 7), (123, 7, 1)]:
        img = make_frame(ep, fr, cam, w, h)
        assert img.shape == (h, w, 3) and img.dtype == np.uint8
        assert read_identity_full(img) == (ep, fr, cam)
        assert read_identity(np.transpose(img, (2, 0, 1))) == (ep, fr)  # CHW
        assert read_identity(np.transpose(img, (2, 0, 1)).astype(np.float32) / 255.0) == (ep, fr)


def test_identity_rejects_foreign_frames():
    with pytest.raises(IdentityError, match="ambiguous|check failed"):
        read_identity(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    img = make_frame(3, 9, 1, 64, 64)
    img[:8, 8:16] = 255 - img[:8, 8:16]  # flip one bit cell
    with pytest.raises(IdentityError, match="check failed"):
        read_identity(img)
    with pytest.raises(IdentityError, match="shape"):
        read_identity(np.zeros((64, 64), np.uint8))
    with pytest.raises(IdentityError, match="height must be >= 72"):
        make_frame(0, 0, 0, 32, 48)


# --- layout and metadata --------------------------------------------------------------------------------


def test_layout_files(lerobot_variant):
    fx = lerobot_variant
    expected = {"meta/info.json", "meta/stats.json", "meta/tasks.parquet"}
    for ep in fx.episodes:
        expected.add(str(ep.data_path.relative_to(fx.root)))
        for v in ep.videos.values():
            expected.add(str(v.path.relative_to(fx.root)))
            assert (
                v.path.name == f"file-{v.file_index:03d}.mp4"
                and v.path.parent.name == f"chunk-{v.chunk_index:03d}"
            )
    rows = _episode_rows(fx)
    for r in rows:
        c, f = r["meta/episodes/chunk_index"], r["meta/episodes/file_index"]
        expected.add(f"meta/episodes/chunk-{c:03d}/file-{f:03d}.parquet")
    found = {str(p.relative_to(fx.root)) for p in fx.root.rglob("*") if p.is_file()}
    assert found == expected


def test_info_json(lerobot_variant):
    fx = lerobot_variant
    info = json.loads((fx.root / "meta" / "info.json").read_text())
    assert list(info) == [
        "codebase_version",
        "fps",
        "features",
        "total_episodes",
        "total_frames",
        "total_tasks",
        "chunks_size",
        "data_files_size_in_mb",
        "video_files_size_in_mb",
        "data_path",
        "video_path",
        "robot_type",
        "splits",
    ]
    assert info["codebase_version"] == "v3.0" and info["fps"] == fx.fps
    assert (info["total_episodes"], info["total_frames"]) == (len(fx.episodes), fx.total_frames)
    assert info["total_tasks"] == len(fx.tasks) and info["splits"] == {"train": f"0:{len(fx.episodes)}"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert list(info["features"])[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    for key, (w, h) in fx.camera_sizes.items():
        ft = info["features"][key]
        assert ft["dtype"] == "video" and ft["shape"] == [h, w, 3]
        vi = ft["info"]
        assert (vi["video.width"], vi["video.height"], vi["video.codec"]) == (w, h, fx.codec)
        assert (vi["video.pix_fmt"], vi["video.fps"], vi["has_audio"], vi["is_depth_map"]) == (
            "yuv420p",
            fx.fps,
            False,
            False,
        )


def test_data_rows(lerobot_variant):
    fx = lerobot_variant
    files = list(dict.fromkeys(ep.data_path for ep in fx.episodes))
    tables = [pq.read_table(f) for f in files]
    for f, t in zip(files, tables, strict=True):
        assert [fd.name for fd in t.schema] == [
            "observation.state",
            "action",
            "timestamp",
            "frame_index",
            "episode_index",
            "index",
            "task_index",
        ]
        assert t.schema.field("observation.state").type == pa.list_(pa.field("element", pa.float32()), 3)
        assert t.schema.field("timestamp").type == pa.float32()
        assert all(
            t.schema.field(k).type == pa.int64() for k in ["frame_index", "episode_index", "index", "task_index"]
        )
        hf = json.loads(t.schema.metadata[b"huggingface"])
        assert hf["info"]["features"]["action"] == {
            "feature": {"dtype": "float32", "_type": "Value"},
            "length": 2,
            "_type": "List",
        }
        assert pq.ParquetFile(f).num_row_groups == len([e for e in fx.episodes if e.data_path == f])
    rows = pa.concat_tables(tables)
    assert rows.column("index").to_pylist() == list(range(fx.total_frames))
    for ep in fx.episodes:
        part = rows.slice(ep.dataset_from_index, ep.length)
        k = np.arange(ep.length)
        assert part.column("episode_index").to_pylist() == [ep.index] * ep.length
        assert part.column("frame_index").to_pylist() == k.tolist()
        assert part.column("task_index").to_pylist() == [ep.task_index] * ep.length
        np.testing.assert_array_equal(part.column("timestamp").to_numpy(), (k / fx.fps).astype(np.float32))
        state = np.stack(part.column("observation.state").to_numpy(zero_copy_only=False))
        np.testing.assert_array_equal(state, expected_state(ep.index, k, 3))
        action = np.stack(part.column("action").to_numpy(zero_copy_only=False))
        np.testing.assert_array_equal(action, -expected_state(ep.index, k, 2))


def test_episodes_metadata(lerobot_variant):
    fx = lerobot_variant
    rows = _episode_rows(fx)
    assert [r["episode_index"] for r in rows] == [e.index for e in fx.episodes]
    head = [
        "episode_index",
        "tasks",
        "length",
        "data/chunk_index",
        "data/file_index",
        "dataset_from_index",
        "dataset_to_index",
    ]
    for cam in fx.camera_keys:
        head += [f"videos/{cam}/{c}" for c in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
    stat_features = fx.camera_keys + [
        "observation.state",
        "action",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
    ]
    cols = head + [f"stats/{f}/{s}" for f in stat_features for s in VIDEO_STATS]
    cols += ["meta/episodes/chunk_index", "meta/episodes/file_index"]
    assert list(rows[0]) == cols
    prev_end: dict[Path, float] = {}
    for r, ep in zip(rows, fx.episodes, strict=True):
        assert (r["tasks"], r["length"]) == ([ep.task], ep.length)
        assert (r["dataset_from_index"], r["dataset_to_index"]) == (ep.dataset_from_index, ep.dataset_to_index)
        assert r[f"stats/{fx.camera_keys[0]}/count"] == [ep.length]
        assert np.asarray(r[f"stats/{fx.camera_keys[0]}/mean"]).shape == (3, 1, 1)
        assert r["stats/observation.state/min"] == [float(ep.index), 0.0, 1.0]
        for cam, v in ep.videos.items():
            assert (r[f"videos/{cam}/chunk_index"], r[f"videos/{cam}/file_index"]) == (v.chunk_index, v.file_index)
            assert r[f"videos/{cam}/from_timestamp"] == v.from_timestamp == prev_end.get(v.path, 0.0)
            assert r[f"videos/{cam}/to_timestamp"] == v.to_timestamp
            assert v.to_timestamp - v.from_timestamp == pytest.approx(ep.length / fx.fps, abs=1e-6)
            prev_end[v.path] = v.to_timestamp
    stats = json.loads((fx.root / "meta" / "stats.json").read_text())
    assert set(stats) == set(stat_features)
    assert stats["index"]["count"] == [fx.total_frames] and stats["index"]["max"] == [fx.total_frames - 1]


def test_tasks_parquet(small_lerobot_dataset):
    fx = small_lerobot_dataset
    t = pq.read_table(fx.root / "meta" / "tasks.parquet")
    assert t.column("task").to_pylist() == list(fx.tasks)
    assert t.column("task_index").to_pylist() == list(range(len(fx.tasks)))
    assert json.loads(t.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert [e.task_index for e in fx.episodes] == [fx.tasks.index(e.task) for e in fx.episodes]


# --- videos ---------------------------------------------------------------------------------------------


def test_identity_decodes_at_lerobot_query_timestamps(lerobot_variant):
    """Every frame decodes (torchcodec) to its own identity, queried as lerobot does and mid-frame."""
    fx = lerobot_variant
    decoders: dict[Path, VideoDecoder] = {}
    for ep in fx.episodes:
        for ci, cam in enumerate(fx.camera_keys):
            v = ep.videos[cam]
            dec = decoders.setdefault(v.path, VideoDecoder(str(v.path), seek_mode="exact"))
            k = np.arange(ep.length)
            # lerobot's decode_video_frames_torchcodec: index = round(timestamp * average_fps)
            ts = v.from_timestamp + (k / fx.fps).astype(np.float32).astype(np.float64)
            by_index = dec.get_frames_at([round(t * dec.metadata.average_fps) for t in ts])
            mid = dec.get_frames_played_at((v.from_timestamp + (k + 0.5) / fx.fps).tolist())
            want = [(ep.index, int(i), ci) for i in k]
            assert [read_identity_full(f) for f in by_index.data] == want, (cam, ep.index)
            assert [read_identity_full(f) for f in mid.data] == want, (cam, ep.index)
            np.testing.assert_allclose(by_index.pts_seconds.numpy(), ts, atol=0.5 / fx.fps)


def test_codec_properties(lerobot_variant):
    fx = lerobot_variant
    for cam in fx.camera_keys:
        for path in fx.video_files(cam):
            probe = json.loads(
                subprocess.run(
                    [
                        "ffprobe",
                        "-v",
                        "error",
                        "-select_streams",
                        "v:0",
                        "-show_entries",
                        "stream=codec_name,codec_tag_string,width,height,has_b_frames,nb_frames",
                        "-of",
                        "json",
                        str(path),
                    ],
                    capture_output=True,
                    check=True,
                ).stdout
            )["streams"][0]
            assert (probe["codec_name"], probe["width"], probe["height"]) == (fx.codec, *fx.camera_sizes[cam])
            eps = [e for e in fx.episodes if e.videos[cam].path == path]
            assert int(probe["nb_frames"]) == sum(e.length for e in eps)
            boxes = _top_level_boxes(path)
            moov_first = boxes.index("moov") < boxes.index("mdat")
            assert moov_first == fx.spec.faststart, boxes
            packets = _packets(path)
            reordered = any(p != d for p, d, _ in packets)
            if fx.codec == "av1":
                assert not reordered and probe["has_b_frames"] == 0
            else:
                assert reordered and probe["has_b_frames"] > 0, f"{path}: no B-frames"
            if fx.codec == "hevc":
                assert probe["codec_tag_string"] == "hvc1"
            order = sorted(range(len(packets)), key=lambda i: packets[i][0])
            key_positions = {pos for pos, i in enumerate(order) if packets[i][2]}
            starts = np.cumsum([0] + [e.length for e in eps[:-1]])
            on_key = [int(s) in key_positions for s in starts]
            if fx.spec.layout == "per_episode":
                assert all(on_key), f"{path}: an episode does not start on a keyframe"
            else:
                assert not all(on_key), f"{path}: continuous encode should start some episode mid-GOP"


def test_multifile_rollover(_lerobot_fixture_cache):
    fx = _lerobot_fixture_cache("av1_multifile")
    front, wrist = fx.camera_keys
    f = [(e.videos[front].chunk_index, e.videos[front].file_index) for e in fx.episodes]
    w = [(e.videos[wrist].chunk_index, e.videos[wrist].file_index) for e in fx.episodes]
    # budgets 12 / 20 frames over lengths (4, 9, 3, 12, 5, 8) with 2 files per chunk
    assert f == [(0, 0), (0, 1), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert w == [(0, 0), (0, 0), (0, 0), (0, 1), (0, 1), (1, 0)]
    assert [e.data_path.relative_to(fx.root).as_posix() for e in fx.episodes] == [
        "data/chunk-000/file-000.parquet"
    ] * 2 + ["data/chunk-000/file-001.parquet"] * 2 + ["data/chunk-001/file-000.parquet"] * 2
    assert len(list((fx.root / "meta" / "episodes").rglob("*.parquet"))) == 2


# --- spec validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"codec": "vp9"}, "codec 'vp9'"),
        ({"episode_lengths": ()}, "episode_lengths"),
        ({"episode_lengths": (3, 0)}, "episode_lengths"),
        ({"tasks": ("a",)}, "tasks has 1 entries for 3 episodes"),
        ({"layout": "interleaved"}, "layout 'interleaved'"),
        ({"video_max_frames": (5,)}, "video_max_frames has 1 entries for 2 cameras"),
        ({"codec": "av1", "bframes": 2}, "bframes 2 invalid"),
        ({"cameras": (CAMS_2[0], CAMS_2[0])}, "distinct keys"),
        ({"cameras": (CameraSpec("observation.images.low", 64, 48),)}, "at least 64x64, got"),
    ],
)
def test_spec_validation(fields, match):
    with pytest.raises(ValueError, match=match):
        LeRobotSpec(**fields)


def test_refuses_non_empty_root(tmp_path):
    (tmp_path / "x").write_text("x")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        make_dataset(LeRobotSpec(), tmp_path)
