"""The long-GOP re-encode tool: same frames at the same times, new codec in info.json, converted and read by us."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.testing.reencode import ReencodeError, ReencodeSettings, main, probe, reencode_root
from lerobot_wds.testing.synth import CAMS_2, LeRobotSpec, make_dataset, read_identity_full

SPEC = LeRobotSpec(codec="av1", cameras=CAMS_2, episode_lengths=(5, 23, 9, 14), video_max_frames=(None, 30))
GOP = 8  # short enough that a 51-frame file has several GOPs and most episodes start inside one


def _packets(path: Path) -> list[tuple[int, int, bool]]:
    with av.open(str(path)) as c:
        return [(p.pts, p.dts, p.is_keyframe) for p in c.demux(video=0) if p.size > 0]


def _decoded_identities(path: Path) -> list[tuple[int, int, int]]:
    with av.open(str(path)) as c:
        return [read_identity_full(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def reencoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("reencode")
    make_dataset(SPEC, base / "src")
    settings = ReencodeSettings("libx264", gop=GOP, bframes=2, crf=18, preset="veryfast", scenecut=False)
    counts = reencode_root(base / "src", base / "dst", settings, jobs=2)
    assert counts == {"files": 3, "frames": 51 + 51, "keyframes": 7 + 4 + 3}  # 51 frames; 28 + 23 frames
    return base / "src", base / "dst"


def test_every_file_keeps_its_frames_and_timestamps_in_h264_with_bframes(reencoded: tuple[Path, Path]) -> None:
    src, dst = reencoded
    files = sorted(p.relative_to(src) for p in src.rglob("*.mp4"))
    assert files == sorted(p.relative_to(dst) for p in dst.rglob("*.mp4")) and len(files) == 3
    for rel in files:
        before, after = _packets(src / rel), _packets(dst / rel)
        assert sorted(p for p, _, _ in before) == sorted(p for p, _, _ in after)
        assert any(pts != dts for pts, dts, _ in after)  # B-frames: presentation order differs from decode order
        times = sorted(pts for pts, _, _ in after)
        keyframes = sorted(times.index(pts) for pts, _, key in after if key)
        assert keyframes == list(range(0, len(after), GOP))  # keyframes exactly every GOP frames
        assert probe(dst / rel).codec == "h264"
        assert _decoded_identities(dst / rel) == _decoded_identities(src / rel)
    assert (dst / "data").exists() and (dst / "meta" / "episodes").exists()


def test_info_json_names_the_new_encoding_and_keeps_everything_else(reencoded: tuple[Path, Path]) -> None:
    src, dst = reencoded
    before = json.loads((src / "meta" / "info.json").read_text())
    after = json.loads((dst / "meta" / "info.json").read_text())
    for cam in ("observation.images.front", "observation.images.wrist"):
        video = after["features"][cam]["info"]
        assert (video["video.codec"], video["video.pix_fmt"], video["video.g"], video["video.crf"]) == (
            "h264",
            "yuv420p",
            GOP,
            18,
        )
        assert video["video.preset"] == "veryfast"
        assert before["features"][cam]["info"]["video.codec"] == "av1"
        after["features"][cam]["info"] = before["features"][cam]["info"]
    assert after == before


def test_converter_and_reader_read_every_frame_of_the_reencoded_root(
    reencoded: tuple[Path, Path], tmp_path: Path
) -> None:
    _, dst = reencoded
    convert(ConvertConfig(source=str(dst), dest=str(tmp_path / "wds"), progress=False, order="source"))
    manifest = json.loads((tmp_path / "wds" / "manifest.json").read_text())
    assert manifest["totals"]["frames"] == sum(SPEC.episode_lengths)
    seen = []
    for s in LeRobotWdsDataset(str(tmp_path / "wds"), shuffle=False, return_uint8=True):
        ep, k = int(s["episode_index"]), int(s["frame_index"])
        for ci, cam in enumerate(("observation.images.front", "observation.images.wrist")):
            assert read_identity_full(s[cam].permute(1, 2, 0).numpy()) == (ep, k, ci)
        seen.append((ep, k))
    assert seen == [(e, k) for e, n in enumerate(SPEC.episode_lengths) for k in range(n)]


def test_existing_destination_is_refused_and_the_cli_says_so(
    reencoded: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = reencoded
    with pytest.raises(ReencodeError, match="destination exists"):
        reencode_root(src, dst, ReencodeSettings())
    assert main([str(src), str(dst)]) == 2
    assert capsys.readouterr().err == f"reencode: {dst}: destination exists\n"
    assert not list(dst.parent.glob(f".{dst.name}.partial-*"))
