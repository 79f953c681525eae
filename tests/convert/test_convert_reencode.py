"""``convert --reencode``: episodes' frames encoded again with a short GOP, recorded, read and verified by PSNR.

The source is long-GOP H.264 with B-frames encoded as one stream per file, so episodes start mid-GOP and
their plain conversion carries lead-in frames; the re-encoded one must hold exactly the episode's frames.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from convert_helpers import read_manifest, read_tar
from torchcodec.decoders import VideoDecoder

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.errors import ConfigError
from lerobot_wds.convert.mp4 import bytes_reader, parse_track_index
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.core.format import EpisodeMeta
from lerobot_wds.testing.synth import CameraSpec, LeRobotSpec, make_dataset, read_identity_full
from lerobot_wds.tools.cli import main
from lerobot_wds.tools.verify.decode import pick_frames
from lerobot_wds.tools.verify.psnr import psnr_db
from lerobot_wds.tools.verify.run import VerifyConfig, verify

# Frames large enough that the identity grid's sharp cells are a small part of them, as in camera images.
CAMERAS = (CameraSpec("observation.images.front", 160, 120), CameraSpec("observation.images.wrist", 128, 96))
SPEC = LeRobotSpec(
    codec="h264", cameras=CAMERAS, episode_lengths=(7, 30, 11, 13), layout="continuous", gop=16, bframes=2
)
CAMS = [c.key for c in CAMERAS]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reencode") / "src"
    make_dataset(SPEC, root)
    return root


def _convert(src: Path, dest: Path, **kw) -> None:
    convert(ConvertConfig(source=str(src), dest=str(dest), progress=False, order="source", workers=2, **kw))


def _episodes(root: Path) -> dict[int, tuple[EpisodeMeta, dict[str, bytes]]]:
    """Every episode's JSON and camera mini-MP4s, by episode index."""
    out = {}
    for shard in sorted((root / "shards").glob("*.tar")):
        members = {name: data for name, data, _ in read_tar(shard.read_bytes())}
        for name, data in members.items():
            if name.endswith(".json"):
                meta = EpisodeMeta.from_json_bytes(data)
                key = name[: -len(".json")]
                out[meta.episode_index] = (meta, {c: members[f"{key}.{c}.mp4"] for c in CAMS})
    return out


@pytest.fixture(scope="module")
def av1_root(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("reencode") / "av1"
    _convert(source, dest, reencode="av1")
    return dest


def test_manifest_records_lerobots_encoder_settings_and_plain_conversions_record_none(
    av1_root: Path, source: Path, tmp_path: Path
) -> None:
    assert read_manifest(av1_root).options["reencode"] == {
        "codec": "av1",
        "encoder": "libsvtav1",
        "gop": 2,
        "crf": 30,
        "preset": "12",
        "pix_fmt": "yuv420p",
    }
    _convert(source, tmp_path / "plain")
    assert "reencode" not in read_manifest(tmp_path / "plain").options


def test_each_camera_holds_exactly_the_episodes_frames_in_gop_2_av1(
    av1_root: Path, source: Path, tmp_path: Path
) -> None:
    _convert(source, tmp_path / "plain")
    plain = _episodes(tmp_path / "plain")
    assert sum(meta.cameras[c].lead_in for meta, _ in plain.values() for c in CAMS) > 0  # mid-GOP starts
    episodes = _episodes(av1_root)
    assert sorted(episodes) == [0, 1, 2, 3]
    for ep, (meta, videos) in episodes.items():
        for ci, cam in enumerate(CAMS):
            cm = meta.cameras[cam]
            assert (cm.codec, cm.frames, cm.lead_in, cm.trail) == ("av1", SPEC.episode_lengths[ep], 0, 0)
            assert (cm.source_file, cm.source_from_timestamp) == (
                plain[ep][0].cameras[cam].source_file,
                plain[ep][0].cameras[cam].source_from_timestamp,
            )
            index = parse_track_index(*bytes_reader(videos[cam]), name=cam)
            assert index.keyframes.tolist() == [k % 2 == 0 for k in range(cm.frames)]
            frames = VideoDecoder(videos[cam], seek_mode="exact").get_frames_in_range(0, cm.frames)
            assert [read_identity_full(f.permute(1, 2, 0).numpy()) for f in frames.data] == [
                (ep, k, ci) for k in range(cm.frames)
            ]
            times = [cm.pts_offset_s + k / SPEC.fps for k in range(cm.frames)]
            assert frames.pts_seconds.tolist() == pytest.approx(times)


def test_reader_reads_every_frame_of_a_reencoded_root(av1_root: Path) -> None:
    seen = []
    for s in LeRobotWdsDataset(str(av1_root), shuffle=False, return_uint8=True):
        ep, k = int(s["episode_index"]), int(s["frame_index"])
        for ci, cam in enumerate(CAMS):
            assert read_identity_full(s[cam].permute(1, 2, 0).numpy()) == (ep, k, ci)
        seen.append((ep, k))
    assert seen == [(e, k) for e, n in enumerate(SPEC.episode_lengths) for k in range(n)]


def test_verify_reports_psnr_of_the_decoded_frames_against_the_source(av1_root: Path, source: Path) -> None:
    # crf 30 keeps about 37 dB on these frames (their identity grid's sharp cells are a lossy encoder's worst
    # case), below the default floor of 40 dB, so the test sets its own floor.
    cfg = VerifyConfig(str(av1_root), source=str(source), decode_frames=3, progress=False, min_psnr_db=33)
    report = verify(cfg)
    assert report.ok, [f.line() for f in report.findings]
    assert report.decoded_frames == 3 * 4 * 2 and report.psnr_db is not None
    # the same frames decoded here: first, middle and last of each episode, the source at mid-frame times
    expected = []
    for _, (meta, videos) in sorted(_episodes(av1_root).items()):
        ks = pick_frames(meta.length, 3)
        for cam in CAMS:
            cm = meta.cameras[cam]
            mini = VideoDecoder(videos[cam], seek_mode="exact").get_frames_at(ks)
            src = VideoDecoder(str(source / cm.source_file), seek_mode="exact").get_frames_played_at(
                [cm.source_from_timestamp + (k + 0.5) / SPEC.fps for k in ks]
            )
            expected += [psnr_db(a, b) for a, b in zip(mini.data, src.data, strict=True)]
    assert len(expected) == report.decoded_frames and all(math.isfinite(db) for db in expected)
    assert report.psnr_db == pytest.approx((min(expected), sum(expected) / len(expected)))
    assert report.psnr_db[0] >= 33.0
    assert f"(re-encoded: PSNR min {min(expected):.2f} dB, mean " in report.summary()


def test_a_frame_below_the_psnr_floor_is_a_finding_and_exits_1(av1_root: Path, source: Path, capsys) -> None:
    report = verify(
        VerifyConfig(str(av1_root), source=str(source), decode_frames=1, progress=False, min_psnr_db=99)
    )
    assert [(f.check, f.episode, f.camera) for f in report.findings] == [
        ("decode", ep, cam) for ep in range(4) for cam in CAMS
    ]
    first = report.findings[0].message
    assert first.startswith("episode frame 0 (re-encoded) is ") and " dB PSNR from the source videos/" in first
    assert first.endswith(" s, expected at least 99 dB")
    code = main(["verify", str(av1_root), "--source", str(source), "--decode", "1", "--min-psnr", "99",
                 "--no-progress"])  # fmt: skip
    assert code == 1 and "expected at least 99 dB" in capsys.readouterr().out


def test_a_root_without_the_option_is_still_checked_for_equality(
    av1_root: Path, source: Path, tmp_path: Path
) -> None:
    _convert(source, tmp_path / "plain")
    report = verify(VerifyConfig(str(tmp_path / "plain"), source=str(source), decode_frames=2, progress=False))
    assert report.ok and report.decoded_frames == 2 * 4 * 2 and report.psnr_db is None
    # the re-encoded shards under a manifest that does not say so: every frame must equal the source's
    manifest = json.loads((av1_root / "manifest.json").read_text())
    del manifest["options"]["reencode"]
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "shards").symlink_to(av1_root / "shards")
    (forged / "meta").symlink_to(av1_root / "meta")
    (forged / "manifest.json").write_text(json.dumps(manifest))
    report = verify(VerifyConfig(str(forged), source=str(source), decode_frames=1, progress=False))
    assert report.psnr_db is None
    assert {(f.check, f.episode, f.camera) for f in report.findings} == {
        ("decode", ep, cam) for ep in range(4) for cam in CAMS
    }
    assert all("differs from the source" in f.message for f in report.findings)


def test_h264_with_another_gop(source: Path, tmp_path: Path) -> None:
    _convert(source, tmp_path / "h264", reencode="h264", reencode_gop=4)
    assert read_manifest(tmp_path / "h264").options["reencode"]["gop"] == 4
    for ep, (meta, videos) in _episodes(tmp_path / "h264").items():
        for cam in CAMS:
            index = parse_track_index(*bytes_reader(videos[cam]), name=cam)
            assert meta.cameras[cam].codec == "h264" and index.sample_count == SPEC.episode_lengths[ep]
            assert index.keyframes.tolist() == [k % 4 == 0 for k in range(index.sample_count)]
            assert (index.cts == index.cts[0]).all()  # no B-frames: decode order is presentation order
    cfg = VerifyConfig(str(tmp_path / "h264"), source=str(source), decode_frames=2, progress=False, min_psnr_db=33)
    report = verify(cfg)
    assert report.ok and report.psnr_db is not None and report.psnr_db[0] >= 33.0


def test_bad_options_are_refused_before_anything_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    with pytest.raises(ConfigError, match=r"^reencode_gop=3 needs reencode \(av1 or h264\)$"):
        ConvertConfig(source="s", dest="d", reencode_gop=3)
    with pytest.raises(ConfigError, match=r"^reencode must be one of \['av1', 'h264'\], got 'vp9'$"):
        ConvertConfig(source="s", dest="d", reencode="vp9")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^reencode_gop must be >= 1, got 0$"):
        ConvertConfig(source="s", dest="d", reencode="av1", reencode_gop=0)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"^--reencode needs the ffmpeg binary on PATH; none was found$"):
        ConvertConfig(source="s", dest="d", reencode="h264")
    # could not run: a missing tool, like any bad option
    assert main(["convert", "s", "d", "--reencode", "h264"]) == 2
    assert capsys.readouterr().err.endswith("--reencode needs the ffmpeg binary on PATH; none was found\n")
