"""Sample index of a source MP4's video track, parsed from its moov box (before or after mdat).

``parse_track_index`` reads only box headers and the moov box through a ``read(offset, length)``
callable, so local files and fsspec URLs share one code path, and expands stts, ctts, stss, stsz,
stsc, stco/co64 and the edit list into per-sample numpy arrays in decode order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from lerobot_wds.convert.errors import Mp4Error
from lerobot_wds.convert.mp4.boxes import (
    Box,
    FullBoxReader,
    ReadFn,
    find_child,
    find_path,
    iter_boxes,
    iter_file_boxes,
)

CODECS = {b"av01": "av1", b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc", b"vp09": "vp9"}
MAX_MOOV_BYTES = 1 << 30
# Per-sample tables cost ~60 bytes a sample; 2^24 samples is 6 days of 30 fps video in one file.
MAX_SAMPLES = 1 << 24


@dataclass(frozen=True, eq=False)
class TrackIndex:
    """Per-sample tables of one video track, in decode order, with times in the track's timescale.

    ``pts = dts + cts - edit_shift``: ``edit_shift`` is the media time where the (single) edit list
    entry starts presenting, so the first presented frame is at 0 as FFmpeg presents it.
    """

    name: str
    codec: str
    width: int
    height: int
    timescale: int
    stsd: bytes
    offsets: np.ndarray
    sizes: np.ndarray
    dts: np.ndarray
    cts: np.ndarray
    durations: np.ndarray
    keyframes: np.ndarray
    edit_shift: int

    @property
    def nbytes(self) -> int:
        """Bytes of the per-sample tables, the search tables (:meth:`pts_order`) and the sample description."""
        arrays = (self.offsets, self.sizes, self.dts, self.cts, self.durations, self.keyframes)
        return sum(a.nbytes for a in arrays) + 2 * 8 * self.sample_count + len(self.stsd)

    @cached_property
    def pts_order(self) -> tuple[np.ndarray, np.ndarray]:
        """``(order, sorted_pts)``: decode-order sample numbers by presentation time (stable), and their pts.

        Built once per file, so finding an episode's samples is a binary search, not a pass over the file.
        """
        pts = self.pts()
        order = np.argsort(pts, kind="stable")
        return order, pts[order]

    @cached_property
    def keyframe_samples(self) -> np.ndarray:
        """The decode-order numbers of the keyframes, ascending."""
        return np.flatnonzero(self.keyframes)

    @property
    def sample_count(self) -> int:
        return int(self.sizes.shape[0])

    def pts(self) -> np.ndarray:
        """Presentation timestamps in timescale units, decode order."""
        return self.dts + self.cts - self.edit_shift

    def pts_seconds(self) -> np.ndarray:
        """Presentation timestamps in seconds, decode order."""
        return self.pts() / float(self.timescale)


def parse_track_index(read: ReadFn, size: int, *, name: str) -> TrackIndex:
    """Parses the first video track of an MP4 file.

    Args:
        read: ``read(offset, length) -> bytes`` over the file.
        size: the file's size in bytes.
        name: the file's path or URL, used in every error message.

    Raises:
        Mp4Error: the file is truncated, has no moov, is fragmented, has no video track, or its sample
            tables disagree with each other or with the file size (samples past the end or overlapping, an
            edit past the media). Counts are checked against the bytes holding them before anything is
            allocated, so memory stays proportional to the file whatever its headers claim.
    """
    moov_box = None
    for box in iter_file_boxes(read, size, name):
        if box.type == b"moof":
            raise Mp4Error(f"{name}: fragmented MP4 (moof box at offset {box.start}) is not supported")
        if box.type == b"moov" and moov_box is None:
            moov_box = box
    if moov_box is None:
        raise Mp4Error(f"{name}: no moov box (not an MP4, or the file is truncated)")
    if moov_box.size > MAX_MOOV_BYTES:
        raise Mp4Error(f"{name}: moov box of {moov_box.size} bytes exceeds {MAX_MOOV_BYTES}")
    data = read(moov_box.start, moov_box.size)
    if len(data) != moov_box.size:
        raise Mp4Error(f"{name}: short read of moov: got {len(data)} of {moov_box.size} bytes")
    moov = Box(b"moov", 0, moov_box.header, moov_box.size)
    for trak in iter_boxes(data, moov.payload_start, moov.end, name):
        if trak.type != b"trak":
            continue
        hdlr = find_path(data, trak, [b"mdia", b"hdlr"], name)
        r = FullBoxReader(data, hdlr, name)
        r.skip(4)
        if bytes(r.table(1, "4s")) == b"vide":
            return _parse_trak(data, trak, size, name)
    raise Mp4Error(f"{name}: no video track (no trak with handler 'vide')")


def _parse_trak(data: bytes, trak: Box, file_size: int, name: str) -> TrackIndex:
    mdhd = FullBoxReader(data, find_path(data, trak, [b"mdia", b"mdhd"], name), name)
    mdhd.skip(16 if mdhd.version == 1 else 8)
    timescale = mdhd.u32()
    if timescale == 0:
        raise Mp4Error(f"{name}: mdhd timescale is 0")
    stbl = find_path(data, trak, [b"mdia", b"minf", b"stbl"], name)
    stsd_box = find_child(data, stbl, b"stsd", name)
    codec, width, height = _sample_entry(data, stsd_box, name)

    sizes = _stsz(data, find_child(data, stbl, b"stsz", name), file_size, name)
    n = sizes.shape[0]
    durations = _run_lengths(data, find_child(data, stbl, b"stts", name), n, "stts", name, signed=False)
    ctts_box = find_child(data, stbl, b"ctts", name, required=False)
    cts = np.zeros(n, np.int64) if ctts_box is None else _run_lengths(data, ctts_box, n, "ctts", name, signed=True)
    offsets = _chunk_offsets(data, stbl, sizes, file_size, name)
    _check_layout(offsets, sizes, file_size, name)
    keyframes = _keyframes(data, find_child(data, stbl, b"stss", name, required=False), n, name)
    dts = np.concatenate([[0], np.cumsum(durations[:-1])]).astype(np.int64) if n else np.zeros(0, np.int64)
    edit_shift = _edit_shift(data, trak, name)
    media_end = int((dts + cts + durations).max()) if n else 0
    if edit_shift > media_end:
        raise Mp4Error(
            f"{name}: edit list starts presenting at media time {edit_shift}, past the track's end ({media_end})"
        )
    return TrackIndex(
        name=name,
        codec=codec,
        width=width,
        height=height,
        timescale=timescale,
        stsd=bytes(data[stsd_box.start : stsd_box.end]),
        offsets=offsets,
        sizes=sizes,
        dts=dts,
        cts=cts,
        durations=durations,
        keyframes=keyframes,
        edit_shift=edit_shift,
    )


def _sample_entry(data: bytes, stsd: Box, name: str) -> tuple[str, int, int]:
    r = FullBoxReader(data, stsd, name)
    count = r.u32()
    if count < 1:
        raise Mp4Error(f"{name}: stsd has no sample entry")
    entry = next(iter_boxes(data, r.pos, stsd.end, name), None)
    if entry is None:
        raise Mp4Error(f"{name}: stsd claims {count} sample entries but holds no box")
    e = FullBoxReader(data, entry, name, full=False)
    e.skip(24)
    width, height = e.u16(), e.u16()
    return CODECS.get(entry.type, entry.type.decode(errors="replace")), width, height


def _stsz(data: bytes, box: Box, file_size: int, name: str) -> np.ndarray:
    r = FullBoxReader(data, box, name)
    constant, count = r.u32(), r.u32()
    if count > MAX_SAMPLES:
        raise Mp4Error(f"{name}: stsz claims {count} samples, more than the supported {MAX_SAMPLES}")
    if constant:
        if count > file_size // max(constant, 1):
            raise Mp4Error(f"{name}: stsz claims {count} samples of {constant} bytes in a {file_size}-byte file")
        return np.full(count, constant, np.int64)
    if count * 4 > r.remaining:
        raise Mp4Error(f"{name}: stsz claims {count} sample sizes but holds only {r.remaining} bytes")
    return np.frombuffer(r.table(count, "I"), ">u4").astype(np.int64)


def _run_lengths(data: bytes, box: Box, n: int, what: str, name: str, *, signed: bool) -> np.ndarray:
    r = FullBoxReader(data, box, name)
    count = r.entry_count(8)
    pairs = np.frombuffer(r.table(count, "II"), ">u4").reshape(-1, 2).astype(np.int64)
    total = int(pairs[:, 0].sum()) if count else 0
    if total != n:
        raise Mp4Error(f"{name}: sample tables disagree: {what} covers {total} samples, stsz has {n}")
    values = pairs[:, 1]
    if signed:
        values = np.where(values >= 1 << 31, values - (1 << 32), values)
    return np.repeat(values, pairs[:, 0])


def _chunk_offsets(data: bytes, stbl: Box, sizes: np.ndarray, file_size: int, name: str) -> np.ndarray:
    n = sizes.shape[0]
    stco = find_child(data, stbl, b"stco", name, required=False)
    co = stco or find_child(data, stbl, b"co64", name, required=False)
    if co is None:
        raise Mp4Error(f"{name}: stbl has neither stco nor co64")
    r = FullBoxReader(data, co, name)
    n_chunks = r.entry_count(4 if stco else 8)
    raw_off = np.frombuffer(r.table(n_chunks, "I" if stco else "Q"), ">u4" if stco else ">u8")
    if n_chunks and int(raw_off.max()) > file_size:  # before int64: a co64 offset >= 2^63 would turn negative
        raise Mp4Error(
            f"{name}: {co.type.decode()} chunk offset {int(raw_off.max())} is past the end of the file "
            f"({file_size} bytes)"
        )
    chunk_off = raw_off.astype(np.int64)
    s = FullBoxReader(data, find_child(data, stbl, b"stsc", name), name)
    n_runs = s.entry_count(12)
    runs = np.frombuffer(s.table(n_runs, "III"), ">u4").reshape(-1, 3).astype(np.int64)
    if n_runs == 0 or runs[0, 0] != 1 or np.any(np.diff(runs[:, 0]) <= 0) or runs[-1, 0] > max(n_chunks, 1):
        raise Mp4Error(f"{name}: stsc table is malformed ({n_runs} entries, {n_chunks} chunks)")
    # samples per chunk, chunk by chunk
    firsts = np.append(runs[:, 0], n_chunks + 1)
    per_chunk = np.repeat(runs[:, 1], np.diff(firsts))
    if int(per_chunk.sum()) != n:
        raise Mp4Error(
            f"{name}: sample tables disagree: stsc/stco describe {int(per_chunk.sum())} samples, stsz has {n}"
        )
    chunk_of_sample = np.repeat(np.arange(n_chunks), per_chunk)
    first_sample_of_chunk = np.concatenate([[0], np.cumsum(per_chunk)[:-1]]).astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    within = csum[:n] - csum[first_sample_of_chunk[chunk_of_sample]]
    return chunk_off[chunk_of_sample] + within


def _check_layout(offsets: np.ndarray, sizes: np.ndarray, file_size: int, name: str) -> None:
    """Checks every sample lies inside the file and no two samples share bytes (so a cut reads <= the file)."""
    if not offsets.size:
        return
    ends = offsets + sizes
    if int(ends.max()) > file_size:
        raise Mp4Error(f"{name}: sample data extends past the end of the file ({file_size} bytes; truncated?)")
    order = np.lexsort((ends, offsets))  # by offset, an empty sample before the one starting where it is
    overlap = np.flatnonzero(offsets[order][1:] < ends[order][:-1])
    if overlap.size:
        a, b = int(order[overlap[0]]), int(order[overlap[0] + 1])
        raise Mp4Error(
            f"{name}: samples {a} and {b} overlap in the file (bytes {int(offsets[a])}..{int(ends[a])} and "
            f"{int(offsets[b])}..{int(ends[b])}); the sample tables are corrupt"
        )


def _keyframes(data: bytes, stss: Box | None, n: int, name: str) -> np.ndarray:
    if stss is None:
        return np.ones(n, bool)
    r = FullBoxReader(data, stss, name)
    count = r.entry_count(4)
    idx = np.frombuffer(r.table(count, "I"), ">u4").astype(np.int64) - 1
    if count and (idx.min() < 0 or idx.max() >= n):
        raise Mp4Error(f"{name}: stss names sample {int(idx.max()) + 1} but the track has {n} samples")
    key = np.zeros(n, bool)
    key[idx] = True
    return key


def _edit_shift(data: bytes, trak: Box, name: str) -> int:
    """Returns the media time the edit list starts presenting at (0 without an edit list)."""
    elst = find_path(data, trak, [b"edts", b"elst"], name, required=False)
    if elst is None:
        return 0
    r = FullBoxReader(data, elst, name)
    width = 20 if r.version == 1 else 12
    count = r.entry_count(width)
    shifts = []
    for _ in range(count):
        r.skip(8 if r.version == 1 else 4)  # segment duration
        media_time = r.u64() if r.version == 1 else r.u32()
        r.skip(4)  # media rate
        signed_minus_one = (1 << 64) - 1 if r.version == 1 else (1 << 32) - 1
        if media_time != signed_minus_one:  # -1 marks an empty edit (a leading delay)
            shifts.append(media_time)
    if len(shifts) > 1:
        raise Mp4Error(f"{name}: edit list with {len(shifts)} media segments is not supported")
    return int(shifts[0]) if shifts else 0
