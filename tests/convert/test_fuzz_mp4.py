"""Fuzzing the MP4 layer (parse_track_index, cut_episode, write_mp4) on mutated real MP4s with hypothesis.

Inputs are real encodes of 16 frames (ffmpeg through ``lerobot_wds.testing.synth_video``): H.264 with
B-frames (ctts, stss, an edit list) with the moov first and last, the moov-last file rewritten to co64
chunk offsets, AV1 (lerobot's default), and a mini-MP4 made by ``cut_episode``. Mutations: truncation at
any offset, bit flips, a box's 32-bit size or 64-bit largesize overwritten (zero, tiny, off by one, huge),
corrupted entry counts and entries of stsz/stco/co64/stts/ctts/stss/stsc/elst, a huge constant sample size.

Property: ``parse_track_index`` returns a self-consistent TrackIndex or raises Mp4Error naming the file,
within the profile's deadline and with traced memory bounded by the file's size (counts read from headers
are checked before numpy allocates); an index that parses is cut and written, and only Mp4Error escapes;
a clip that is written parses again. Example counts come from the hypothesis profile (tests/conftest.py:
"ci" by default, ``HYPOTHESIS_PROFILE=fuzz`` in ``make fuzz``).
"""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lerobot_wds.convert.mp4 import Mp4Error, SampleTable, bytes_reader, cut_episode, parse_track_index, write_mp4
from lerobot_wds.convert.mp4.boxes import CONTAINER_BOXES, Box, iter_boxes
from lerobot_wds.convert.mp4.write import full_box
from lerobot_wds.testing.synth_video import default_settings, encode_frames

NAME = "videos/cam/file-000.mp4"
FPS = 30
FRAMES = 16
SAMPLE_ENTRIES = frozenset({b"avc1", b"avc3", b"av01", b"hvc1", b"hev1"})
# (box type, byte offset of its entry count after the payload start, entry width in bytes)
TABLES = {
    b"stts": (4, 8),
    b"ctts": (4, 8),
    b"stss": (4, 4),
    b"stsc": (4, 12),
    b"stco": (4, 4),
    b"co64": (4, 8),
    b"elst": (4, 12),
    b"stsz": (8, 4),
}
# Traced allocations while parsing may not exceed this many bytes per byte of input, plus a constant.
MEMORY_PER_BYTE = 64
MEMORY_SLACK = 2 << 20


def _frames(n: int, height: int, width: int) -> np.ndarray:
    """A moving gradient: content that changes every frame, so every sample has real coded data."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [np.stack([(x * 4 + t * 9) % 256, (y * 5 + t * 3) % 256, (x + y + t * 17) % 256], -1) for t in range(n)]
    ).astype(np.uint8)


def walk_boxes(data: bytes) -> list[Box]:
    """Every box of a valid MP4, depth first: containers, stsd and its sample entries are descended into."""
    out: list[Box] = []

    def walk(start: int, end: int) -> None:
        for b in iter_boxes(data, start, end, NAME):
            out.append(b)
            if b.type in CONTAINER_BOXES:
                walk(b.payload_start, b.end)
            elif b.type == b"stsd":
                walk(b.payload_start + 8, b.end)
            elif b.type in SAMPLE_ENTRIES:
                walk(b.payload_start + 78, b.end)

    walk(0, len(data))
    return out


def replace_box(data: bytes, typ: bytes, new: bytes) -> bytes:
    """Replaces the first ``typ`` box of a moov-at-end MP4 by ``new`` (its ancestors' sizes follow; chunk
    offsets stay right because the samples lie before the moov)."""
    boxes = walk_boxes(data)
    old = next(b for b in boxes if b.type == typ)
    mdat = next(b for b in boxes if b.type == b"mdat")
    assert mdat.start < old.start, "replace_box needs the moov after the mdat"
    buf = bytearray(data[: old.start] + new + data[old.end :])
    for b in boxes:  # every ancestor grows by the difference
        if b.start < old.start and b.end >= old.end:
            assert b.header == 8
            struct.pack_into(">I", buf, b.start, b.size + len(new) - old.size)
    return bytes(buf)


def to_co64(data: bytes) -> bytes:
    """Rewrites a moov-at-end MP4's stco as co64 with the same offsets."""
    stco = next(b for b in walk_boxes(data) if b.type == b"stco")
    (n,) = struct.unpack_from(">I", data, stco.payload_start + 4)
    offsets = np.frombuffer(data, ">u4", n, stco.payload_start + 8)
    return replace_box(
        data, b"stco", full_box(b"co64", 0, 0, struct.pack(">I", n), offsets.astype(">u8").tobytes())
    )


def _parse(data: bytes):
    read, size = bytes_reader(data)
    return parse_track_index(read, size, name=NAME)


def _cut(idx, data: bytes, start: int, frames: int, fps: float):
    read, _ = bytes_reader(data)
    return cut_episode(
        idx,
        read,
        from_timestamp=start / fps,
        to_timestamp=(start + frames) / fps,
        fps=fps,
        expected_frames=frames,
        where=NAME,
    )


class Sources(dict):
    """name -> (MP4 bytes, boxes), printed briefly in hypothesis' falsifying examples."""

    def __repr__(self) -> str:
        return f"<MP4 sources {sorted(self)}>"


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Sources:
    """name -> (valid MP4 bytes, its boxes); each one parses before it is mutated."""
    d: Path = tmp_path_factory.mktemp("fuzz_mp4")
    h264 = default_settings("h264", gop=8, bframes=2)
    files = {
        "h264": encode_frames(_frames(FRAMES, 48, 64), d / "a.mp4", fps=FPS, settings=h264).read_bytes(),
        "h264_moov_end": encode_frames(
            _frames(FRAMES, 48, 64), d / "b.mp4", fps=FPS, settings=h264, faststart=False
        ).read_bytes(),
        "av1": encode_frames(
            _frames(FRAMES, 64, 64), d / "c.mp4", fps=FPS, settings=default_settings("av1")
        ).read_bytes(),
    }
    files["co64"] = to_co64(files["h264_moov_end"])
    clip = _cut(_parse(files["h264"]), files["h264"], 3, 9, FPS)  # starts mid-GOP: lead-in and trail frames
    files["mini"] = clip.data
    out = Sources()
    for name, data in files.items():
        assert _parse(data).sample_count == (FRAMES if name != "mini" else clip.frames), name
        out[name] = (data, walk_boxes(data))
    assert {b.type for b in out["co64"][1]} >= {b"co64", b"ctts", b"stss", b"elst"}
    assert b"stco" not in {b.type for b in out["co64"][1]}
    return out


U32_EDGES = [0, 1, 2, 7, 8, 15, 16, 255, 1 << 16, (1 << 31) - 1, 1 << 31, (1 << 32) - 2, (1 << 32) - 1]
U64_EDGES = [0, 1, 8, 15, 16, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1]


def _u32(near: int) -> st.SearchStrategy[int]:
    """Edge values, values near ``near`` (a real size or count) and anything else that fits 32 bits."""
    close = [v for v in (near - 1, near + 1, near * 2, near + 4) if 0 <= v < 1 << 32]
    return st.one_of(st.sampled_from(U32_EDGES + close), st.integers(0, (1 << 32) - 1))


Patch = tuple[str, int, bytes]  # (kind, offset, bytes written there): printed as is when an example fails


@st.composite
def mutation(draw, data: bytes, boxes: list[Box]) -> list[Patch]:
    """One mutation of ``data`` (``boxes`` locate its boxes) as the byte patches that make it."""
    kind = draw(st.sampled_from(["flip", "box_size", "largesize", "count", "entry", "stsz_constant"]))
    tables = [b for b in boxes if b.type in TABLES]
    if kind == "flip":
        moov = next(b for b in boxes if b.type == b"moov")
        lo, hi = draw(st.sampled_from([(0, len(data)), (moov.start, moov.end)]))
        flips = []
        for _ in range(draw(st.integers(1, 8))):
            pos = draw(st.integers(lo, hi - 1))
            flips.append((kind, pos, bytes([data[pos] ^ (1 << draw(st.integers(0, 7)))])))
        return flips
    if kind == "box_size":
        b = draw(st.sampled_from(boxes))
        return [(kind, b.start, struct.pack(">I", draw(_u32(b.size))))]
    if kind == "largesize":
        b = draw(st.sampled_from([b for b in boxes if b.start + 16 <= len(data)]))
        near = [v for v in (b.size, b.size + 8, b.size - 1) if v >= 0]
        value = draw(st.one_of(st.sampled_from(U64_EDGES + near), st.integers(0, (1 << 64) - 1)))
        return [(kind, b.start, struct.pack(">IQ", 1, value))]
    if kind == "stsz_constant":  # every sample claims one (huge or tiny) size
        b = next(b for b in boxes if b.type == b"stsz")
        return [(kind, b.payload_start + 4, struct.pack(">I", draw(_u32(len(data)))))]
    b = draw(st.sampled_from(tables))
    at, _ = TABLES[b.type]
    pos = b.payload_start + at
    if kind == "entry":
        words = (b.end - pos - 4) // 4
        if words < 1:
            return []
        pos += 4 + 4 * draw(st.integers(0, words - 1))
    (old,) = struct.unpack_from(">I", data, pos)
    return [(f"{kind} of {b.type.decode()}", pos, struct.pack(">I", draw(_u32(old))))]


def apply(data: bytes, patches: list[Patch]) -> bytes:
    buf = bytearray(data)
    for _, pos, value in patches:
        buf[pos : pos + len(value)] = value
    return bytes(buf)


def _check_index(idx, size: int) -> None:
    """A TrackIndex that parsed must be usable as is: tables of one length, every sample inside the file."""
    n = idx.sample_count
    for name in ("offsets", "dts", "cts", "durations", "keyframes"):
        assert getattr(idx, name).shape == (n,), name
    if n:
        assert int(idx.offsets.min()) >= 0
        assert int((idx.offsets + idx.sizes).max()) <= size
    assert idx.timescale > 0
    idx.pts()  # no overflow


def check_mp4(data: bytes, start: int, frames: int, fps: float) -> str:
    """The property: parse within bounded memory, then cut; returns which stage stopped it (for the tally)."""
    tracemalloc.start()
    try:
        idx = _parse(data)
    except Mp4Error as e:
        assert NAME in str(e)
        return "parse: Mp4Error"
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak <= MEMORY_PER_BYTE * len(data) + MEMORY_SLACK, f"parsing {len(data)} bytes traced {peak}"
    _check_index(idx, len(data))
    try:
        clip = _cut(idx, data, start, frames, fps)
    except Mp4Error as e:
        assert NAME in str(e)
        return "cut: Mp4Error"
    again = _parse(clip.data)  # what we write, we can read
    assert again.sample_count == clip.frames
    assert clip.frames == clip.lead_in + frames + clip.trail
    return "cut: ok"


@given(data=st.data())
def test_mp4_mutations_parse_or_raise_mp4error(sources, data):
    """One to three mutations (and maybe a truncation) of a real MP4: TrackIndex or Mp4Error, never else."""
    base = data.draw(st.sampled_from(sorted(sources)), label="source")
    buf, boxes = sources[base]
    for _ in range(data.draw(st.integers(1, 3))):
        buf = apply(buf, data.draw(mutation(sources[base][0], boxes)))
    if data.draw(st.booleans()):
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    start = data.draw(st.integers(0, 8))
    frames = data.draw(st.integers(1, 8))
    check_mp4(buf, start, frames, data.draw(st.sampled_from([FPS, FPS, 25.0, 60.0])))


@given(data=st.data())
def test_mp4_table_counts_claiming_huge_sizes_raise_before_allocating(sources, data):
    """A count of up to 2^32-1 in any sample table of any source raises Mp4Error, not MemoryError."""
    base = data.draw(st.sampled_from(sorted(sources)), label="source")
    buf, boxes = sources[base]
    b = data.draw(st.sampled_from([b for b in boxes if b.type in TABLES]))
    at, width = TABLES[b.type]
    value = data.draw(st.integers(max(1, b.size) // width + 1, (1 << 32) - 1))
    mutated = bytearray(buf)
    struct.pack_into(">I", mutated, b.payload_start + at, value)
    assert check_mp4(bytes(mutated), 0, 8, FPS) == "parse: Mp4Error"


@pytest.mark.parametrize("source", ["h264", "h264_moov_end", "co64", "av1", "mini"])
def test_every_truncation_of_the_index_raises_mp4error(sources, source):
    """Exhaustive over the moov: cutting the file at every offset up to the moov's end raises Mp4Error."""
    data, boxes = sources[source]
    moov = next(b for b in boxes if b.type == b"moov")
    for cut in range(0, moov.end):
        assert check_mp4(data[:cut], 0, 8, FPS) == "parse: Mp4Error", cut


@pytest.mark.parametrize("source", ["h264", "co64", "mini"])
def test_every_box_size_edge_value_parses_or_raises(sources, source):
    """Exhaustive: every box's 32-bit size set to every edge value, and to a 64-bit largesize edge value."""
    data, boxes = sources[source]
    for b in boxes:
        for value in U32_EDGES + [b.size - 1, b.size + 1]:
            buf = bytearray(data)
            struct.pack_into(">I", buf, b.start, value)
            check_mp4(bytes(buf), 0, 8, FPS)
        for value in U64_EDGES + [b.size + 8]:
            buf = bytearray(data)
            struct.pack_into(">IQ", buf, b.start, 1, value)
            check_mp4(bytes(buf), 0, 8, FPS)


# Regressions: each input below made the parser or writer raise something other than Mp4Error (or allocate
# by a header's claim) before the check that now names it.


def _table_box(typ: bytes, version: int, rows: list[tuple[int, ...]], fmt: str) -> bytes:
    body = b"".join(struct.pack(">" + fmt, *r) for r in rows)
    return full_box(typ, version, 0, struct.pack(">I", len(rows)), body)


def test_stsd_claiming_an_entry_it_does_not_hold(sources):
    data = replace_box(sources["h264_moov_end"][0], b"stsd", full_box(b"stsd", 0, 0, struct.pack(">I", 1)))
    with pytest.raises(Mp4Error, match=f"{NAME}: stsd claims 1 sample entries but holds no box"):
        _parse(data)


def test_co64_offset_past_int64_is_past_the_end(sources):
    data = replace_box(sources["co64"][0], b"co64", _table_box(b"co64", 0, [(1 << 63,)], "Q"))
    with pytest.raises(Mp4Error, match=f"{NAME}: co64 chunk offset {1 << 63} is past the end of the file"):
        _parse(data)


@pytest.mark.parametrize("version, media_time", [(0, (1 << 31) - 1), (1, (1 << 63) + 5), (1, (1 << 62))])
def test_edit_list_starting_past_the_media(sources, version, media_time):
    elst = _table_box(b"elst", version, [(1000, media_time, 0x10000)], "QQI" if version else "IiI")
    data = replace_box(sources["h264_moov_end"][0], b"elst", elst)
    with pytest.raises(Mp4Error, match=f"{NAME}: edit list starts presenting at media time {media_time}, past"):
        _parse(data)


def test_overlapping_samples(sources):
    """One sample per chunk, the second chunk starting inside the first sample: every byte is in the file."""
    data = sources["h264_moov_end"][0]
    offsets = _parse(data).offsets.tolist()
    offsets[1] = offsets[0] + 1
    data = replace_box(data, b"stsc", _table_box(b"stsc", 0, [(1, 1, 1)], "III"))
    data = replace_box(data, b"stco", _table_box(b"stco", 0, [(o,) for o in offsets], "I"))
    with pytest.raises(Mp4Error, match=f"{NAME}: samples 0 and 1 overlap in the file"):
        _parse(data)


def test_constant_sample_size_claiming_more_samples_than_supported(sources):
    stsz = full_box(b"stsz", 0, 0, struct.pack(">II", 1, (1 << 32) - 1))
    data = replace_box(sources["h264_moov_end"][0], b"stsz", stsz)
    with pytest.raises(Mp4Error, match=f"{NAME}: stsz claims {(1 << 32) - 1} samples, more than the supported"):
        _parse(data)


def test_clip_longer_than_32_bit_durations_names_the_episode(sources):
    """Only the last sample's duration is huge: every frame presents on time, the clip cannot be written."""
    stts = _table_box(b"stts", 0, [(FRAMES - 1, 512), (1, (1 << 32) - 1)], "II")
    data = replace_box(sources["h264_moov_end"][0], b"stts", stts)
    idx = _parse(data)
    read, _ = bytes_reader(data)
    where = f"{NAME} episode 0 camera front"
    with pytest.raises(Mp4Error, match=f"{where}: clip lasts .* more than a 32-bit MP4 duration holds"):
        cut_episode(
            idx, read, from_timestamp=0, to_timestamp=FRAMES / FPS, fps=FPS, expected_frames=FRAMES, where=where
        )


def _table_of(idx, cts) -> SampleTable:
    return SampleTable(
        stsd=idx.stsd,
        timescale=idx.timescale,
        width=idx.width,
        height=idx.height,
        durations=idx.durations,
        cts=cts,
        keyframes=idx.keyframes,
        sizes=idx.sizes,
    )


def test_negative_composition_times_are_written_readably(sources):
    """A ctts (version 1) presenting the first frame before its decode time: the clip needs no negative edit."""
    data = sources["h264"][0]
    idx = _parse(data)
    assert idx.edit_shift == 1024
    table = _table_of(idx, idx.cts - 2048)
    samples = b"".join(data[o : o + n] for o, n in zip(idx.offsets.tolist(), idx.sizes.tolist(), strict=True))
    again = _parse(write_mp4(table, samples, where=NAME))
    assert again.pts().tolist() == idx.pts().tolist()  # the same frames at the same times, first one at 0


def test_composition_offsets_wider_than_32_bits_name_the_clip(sources):
    idx = _parse(sources["h264"][0])
    cts = idx.cts.copy()
    cts[1], cts[2] = -(1 << 31), (1 << 31) - 1
    table = _table_of(idx, cts)
    with pytest.raises(Mp4Error, match=f"{NAME}: composition offsets .* do not fit ctts version 1"):
        write_mp4(table, b"\0" * int(idx.sizes.sum()), where=NAME)
