"""Bad MP4 input: every failure is one domain error (Mp4Error) naming the file and the problem."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lerobot_wds.convert.mp4 import Mp4Error, bytes_reader, cut_episode, parse_track_index

NAME = "cam/file-000.mp4"


def _cut(idx, read, *, start: int, frames: int, where: str):
    """Cuts 30 fps frames ``start:start + frames`` of NAME."""
    return cut_episode(
        idx,
        read,
        from_timestamp=start / 30,
        to_timestamp=(start + frames) / 30,
        fps=30,
        expected_frames=frames,
        where=where,
    )


def _ffmpeg(out: Path, *args: str) -> bytes:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args, str(out)], check=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("mp4err")
    src = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=30", "-frames:v", "30", "-pix_fmt", "yuv420p"]
    return {
        "h264": _ffmpeg(d / "a.mp4", *src, "-c:v", "libx264", "-g", "10", "-bf", "2", "-movflags", "+faststart"),
        "h264_moov_end": _ffmpeg(d / "b.mp4", *src, "-c:v", "libx264", "-g", "10", "-bf", "2"),
        "fragmented": _ffmpeg(
            d / "c.mp4", *src, "-c:v", "libx264", "-movflags", "frag_keyframe+empty_moov+default_base_moof"
        ),
        "audio_only": _ffmpeg(d / "d.mp4", "-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac"),
    }


def _parse(data: bytes):
    read, size = bytes_reader(data)
    return parse_track_index(read, size, name=NAME)


def _patch_box_u32(data: bytes, typ: bytes, field_offset: int, value: int) -> bytes:
    """Overwrites a u32 at ``field_offset`` bytes after the first ``typ`` box's header."""
    pos = data.index(typ) - 4
    buf = bytearray(data)
    struct.pack_into(">I", buf, pos + 8 + field_offset, value)
    return bytes(buf)


@pytest.mark.parametrize("variant", ["h264", "h264_moov_end"])
def test_valid_files_parse_with_moov_anywhere(videos, variant):
    idx = _parse(videos[variant])
    assert (idx.codec, idx.width, idx.height, idx.sample_count) == ("h264", 64, 48, 30)
    assert int(idx.keyframes.sum()) == 3
    assert sorted(idx.pts().tolist()) == [i * idx.timescale // 30 for i in range(30)]


def test_truncated_file_names_file(videos):
    data = videos["h264"]
    with pytest.raises(Mp4Error, match=f"{NAME}: .*(past the end|truncated)"):
        _parse(data[: len(data) // 2])


def test_truncated_inside_moov(videos):
    data = videos["h264_moov_end"]
    with pytest.raises(Mp4Error, match=f"{NAME}: .*truncated"):
        _parse(data[: len(data) - 50])


def test_missing_moov(videos):
    data = videos["h264"].replace(b"moov", b"free", 1)
    with pytest.raises(Mp4Error, match=f"{NAME}: no moov box"):
        _parse(data)


def test_fragmented_mp4(videos):
    with pytest.raises(Mp4Error, match=f"{NAME}: fragmented MP4 \\(moof box at offset \\d+\\)"):
        _parse(videos["fragmented"])


def test_no_video_track(videos):
    with pytest.raises(Mp4Error, match=f"{NAME}: no video track"):
        _parse(videos["audio_only"])


def test_stts_disagrees_with_stsz(videos):
    # stts: version/flags(4) entry_count(4) then (sample_count, delta): claim one sample fewer
    data = videos["h264"]
    pos = data.index(b"stts") + 4 + 8
    (count,) = struct.unpack_from(">I", data, pos)
    bad = _patch_box_u32(data, b"stts", 8, count - 1)
    with pytest.raises(Mp4Error, match=f"{NAME}: sample tables disagree: stts covers 29 samples, stsz has 30"):
        _parse(bad)


def test_stsc_disagrees_with_stsz(videos):
    # stsc first entry's samples_per_chunk (after version/flags, entry_count, first_chunk)
    bad = _patch_box_u32(videos["h264"], b"stsc", 12, 1)
    with pytest.raises(Mp4Error, match=f"{NAME}: sample tables disagree: stsc/stco describe"):
        _parse(bad)


def test_episode_without_enough_frames_names_episode(videos):
    read, size = bytes_reader(videos["h264"])
    idx = parse_track_index(read, size, name=NAME)
    where = f"{NAME} episode 3 camera observation.images.front"
    with pytest.raises(Mp4Error, match=f"{where}: expected 40 frames .* found 20"):
        _cut(idx, read, start=10, frames=40, where=where)


def test_episode_without_keyframe(videos):
    data = videos["h264"]
    # drop the sync-sample table's entries: claim only sample 11 (a mid-file frame) is a keyframe
    pos = data.index(b"stss") - 4
    (box_size,) = struct.unpack_from(">I", data, pos)
    buf = bytearray(data)
    struct.pack_into(">II", buf, pos + 12, 1, 11)
    struct.pack_into(">I", buf, pos, 20)
    buf[pos + 20 : pos + box_size] = b"\0" * (box_size - 20)  # leave padding as a valid zero-filled gap
    # re-wrap the padding as a 'free' box so the box tree stays valid
    struct.pack_into(">I4s", buf, pos + 20, box_size - 20, b"free")
    read, size = bytes_reader(bytes(buf))
    idx = parse_track_index(read, size, name=NAME)
    with pytest.raises(Mp4Error, match=f"{NAME} ep 0: no keyframe at or before the episode's first frame"):
        _cut(idx, read, start=0, frames=5, where=f"{NAME} ep 0")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_parser_only_raises_mp4error_on_mutations(videos, data):
    """Truncations and byte flips never hang the parser and never raise anything but Mp4Error."""
    base = videos[data.draw(st.sampled_from(["h264", "h264_moov_end"]))]
    buf = bytearray(base)
    moov = base.index(b"moov") - 4
    for _ in range(data.draw(st.integers(1, 8))):
        # concentrate mutations on the index, where the parser looks
        pos = data.draw(st.integers(moov, min(len(buf) - 1, moov + 1500)))
        buf[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    mutated = bytes(buf[:cut]) if data.draw(st.booleans()) else bytes(buf)
    try:
        idx = _parse(mutated)
    except Mp4Error as e:
        assert NAME in str(e)
        return
    read, _ = bytes_reader(mutated)
    try:
        _cut(idx, read, start=0, frames=10, where=NAME)
    except Mp4Error as e:
        assert NAME in str(e)
