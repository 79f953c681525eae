"""Synthesis of a self-contained faststart MP4 from copied video samples (no re-encoding).

The output has one video track whose sample description (``stsd``: codec and its configuration
record) is copied verbatim from the source, the samples' durations and composition offsets, keyframe
marks, an edit list that presents the first frame at time 0, and all samples in a single chunk of one
mdat placed after the moov (faststart). Output bytes depend only on the inputs (no creation times).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

import numpy as np

from lerobot_wds.convert.errors import Mp4Error

MOVIE_TIMESCALE = 1000
U32_MAX = (1 << 32) - 1


@dataclass(frozen=True, eq=False)
class SampleTable:
    """The samples of one video track to write, in decode order (times in ``timescale`` units)."""

    stsd: bytes
    timescale: int
    width: int
    height: int
    durations: np.ndarray
    cts: np.ndarray
    keyframes: np.ndarray
    sizes: np.ndarray


def box(typ: bytes, *parts: bytes) -> bytes:
    """Returns one box with a 32-bit size header."""
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), typ) + payload


def full_box(typ: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    """Returns one full box (version and flags after the header)."""
    return box(typ, struct.pack(">I", (version << 24) | flags), *parts)


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """Run-length encodes ``values`` as (count, value) pairs."""
    if values.size == 0:
        return []
    change = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], change])
    counts = np.diff(np.concatenate([starts, [values.size]]))
    return [(int(c), int(values[s])) for c, s in zip(counts, starts, strict=True)]


def _table(typ: bytes, version: int, pairs: list[tuple[int, int]], fmt: str) -> bytes:
    body = b"".join(struct.pack(">" + fmt, a, b) for a, b in pairs)
    return full_box(typ, version, 0, struct.pack(">I", len(pairs)), body)


def _stbl(t: SampleTable, chunk_offset: int, where: str) -> bytes:
    n = int(t.sizes.shape[0])
    parts = [t.stsd, _table(b"stts", 0, _runs(t.durations), "II")]
    if np.any(t.cts != 0):
        version = 1 if np.any(t.cts < 0) else 0
        lo, hi = (-(1 << 31), (1 << 31) - 1) if version else (0, U32_MAX)
        if int(t.cts.min()) < lo or int(t.cts.max()) > hi:
            raise Mp4Error(
                f"{where}: composition offsets {int(t.cts.min())}..{int(t.cts.max())} do not fit ctts "
                f"version {version} (corrupt ctts?)"
            )
        parts.append(_table(b"ctts", version, _runs(t.cts), "Ii" if version else "II"))
    if not np.all(t.keyframes):
        keys = np.flatnonzero(t.keyframes) + 1
        parts.append(full_box(b"stss", 0, 0, struct.pack(">I", keys.size), keys.astype(">u4").tobytes()))
    parts.append(full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, n, 1)))
    parts.append(full_box(b"stsz", 0, 0, struct.pack(">II", 0, n), t.sizes.astype(">u4").tobytes()))
    if chunk_offset < 1 << 32:
        parts.append(full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)))
    else:
        parts.append(full_box(b"co64", 0, 0, struct.pack(">IQ", 1, chunk_offset)))
    return box(b"stbl", *parts)


def _matrix() -> bytes:
    return struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _moov(t: SampleTable, chunk_offset: int, where: str) -> bytes:
    comp = np.concatenate([[0], np.cumsum(t.durations)[:-1]]).astype(np.int64) + t.cts
    shift = int(comp.min()) if comp.size else 0
    media_duration = int(t.durations.sum())
    # the edit must cover every frame's presentation, including frames whose composition time lies past
    # the media duration (a cut ending on a P-frame that B-frames present before)
    presented = int((comp + t.durations).max()) - shift if comp.size else 0
    movie_duration = presented * MOVIE_TIMESCALE // t.timescale
    if max(media_duration, movie_duration) > U32_MAX:  # version-0 boxes hold 32-bit durations
        raise Mp4Error(
            f"{where}: clip lasts {media_duration} ticks of 1/{t.timescale} s ({movie_duration} ms), "
            "more than a 32-bit MP4 duration holds (corrupt sample durations?)"
        )
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, movie_duration),
        struct.pack(">IH", 0x10000, 0x100),
        b"\0" * 10,
        _matrix(),
        b"\0" * 24,
        struct.pack(">I", 2),
    )
    tkhd = full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, movie_duration),
        b"\0" * 8,
        struct.pack(">HHHH", 0, 0, 0, 0),
        _matrix(),
        struct.pack(">II", t.width << 16, t.height << 16),
    )
    edts = b""
    if shift:  # present the first frame at 0, as FFmpeg's muxer does for B-frame streams
        edts = box(b"edts", full_box(b"elst", 0, 0, struct.pack(">IIiI", 1, movie_duration, shift, 0x10000)))
    mdhd = full_box(
        b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, t.timescale, media_duration), struct.pack(">HH", 0x55C4, 0)
    )
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, b"vide"), b"\0" * 12, b"VideoHandler\0")
    vmhd = full_box(b"vmhd", 0, 1, b"\0" * 8)
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    minf = box(b"minf", vmhd, dinf, _stbl(t, chunk_offset, where))
    trak = box(b"trak", tkhd, edts, box(b"mdia", mdhd, hdlr, minf))
    return box(b"moov", mvhd, trak)


def _ftyp(stsd: bytes) -> bytes:
    brands = [b"isom", b"iso2", b"mp41"]
    if b"av01" in stsd[:32]:
        brands.append(b"av01")
    return box(b"ftyp", b"isom", struct.pack(">I", 0x200), *brands)


def write_mp4(table: SampleTable, sample_data: bytes, *, where: str = "mini-MP4") -> bytes:
    """Returns a faststart MP4 holding ``sample_data`` (the samples' bytes, concatenated in decode order).

    Raises:
        Mp4Error: naming ``where`` when the samples' total duration or composition offsets do not fit the MP4's
            32-bit fields.
    """
    comp = np.concatenate([[0], np.cumsum(table.durations)[:-1]]).astype(np.int64) + table.cts
    if comp.size and int(comp.min()) < 0:
        # an edit list cannot start presenting before media time 0: move every composition time up instead, which
        # presents the same frames at the same times relative to the first one
        table = replace(table, cts=table.cts - int(comp.min()))
    ftyp = _ftyp(table.stsd)
    total = len(sample_data)
    large = total + 8 > 0xFFFFFFFF
    mdat_header = (
        struct.pack(">I4sQ", 1, b"mdat", total + 16) if large else struct.pack(">I4s", total + 8, b"mdat")
    )
    moov_size = len(_moov(table, 0, where))
    offset = len(ftyp) + moov_size + len(mdat_header)
    moov = _moov(table, offset, where)
    if len(moov) != moov_size:  # the chunk offset crossed into co64; recompute once with the wider box
        offset = len(ftyp) + len(moov) + len(mdat_header)
        moov = _moov(table, offset, where)
    return b"".join([ftyp, moov, mdat_header, sample_data])
