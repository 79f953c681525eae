"""ISO-BMFF (MP4) box plumbing: the domain error, bounded big-endian readers and box walking.

Everything here works on either a ``read(offset, length) -> bytes`` callable (top-level boxes of a file
that may be remote) or an in-memory ``bytes`` buffer (the moov box, read once). Every malformed input
surfaces as :class:`Mp4Error` naming the file and what was wrong; nothing here can loop forever because
every step consumes at least one box header.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, overload

from lerobot_wds.convert.errors import Mp4Error

ReadFn = Callable[[int, int], bytes]

# Containers whose children the index parser descends into.
CONTAINER_BOXES = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"})


@dataclass(frozen=True)
class Box:
    """One box: its four-character type, absolute start offset, header size and total size."""

    type: bytes
    start: int
    header: int
    size: int

    @property
    def payload_start(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def _header(data: bytes, pos: int, limit: int, name: str) -> Box:
    """Decodes the box header at ``data[pos:]`` whose container ends at ``limit``."""
    if limit - pos < 8:
        raise Mp4Error(f"{name}: truncated box header at offset {pos} ({limit - pos} bytes left, need 8)")
    size, typ = struct.unpack_from(">I4s", data, pos)
    header = 8
    if size == 1:
        if limit - pos < 16:
            raise Mp4Error(f"{name}: truncated 64-bit box header of {typ!r} at offset {pos}")
        (size,) = struct.unpack_from(">Q", data, pos + 8)
        header = 16
    elif size == 0:
        size = limit - pos  # box extends to the end of its container
    if size < header:
        raise Mp4Error(f"{name}: box {typ!r} at offset {pos} has size {size} < header size {header}")
    if pos + size > limit:
        raise Mp4Error(
            f"{name}: box {typ!r} at offset {pos} has size {size} but only {limit - pos} bytes remain "
            "(truncated file?)"
        )
    return Box(typ, pos, header, size)


def iter_file_boxes(read: ReadFn, size: int, name: str) -> Iterator[Box]:
    """Yields the top-level boxes of a file of ``size`` bytes, reading only their headers."""
    pos = 0
    while pos < size:
        head = read(pos, min(16, size - pos))
        if len(head) < min(16, size - pos):
            raise Mp4Error(f"{name}: short read at offset {pos}: got {len(head)} bytes")
        box = _header(head, 0, size - pos, name)
        yield Box(box.type, pos, box.header, box.size)
        pos += box.size


def iter_boxes(data: bytes, start: int, end: int, name: str) -> Iterator[Box]:
    """Yields the boxes laid end to end in ``data[start:end]`` (offsets are into ``data``)."""
    pos = start
    while pos < end:
        box = _header(data, pos, end, name)
        yield box
        pos = box.end


@overload
def find_child(data: bytes, parent: Box, typ: bytes, name: str, *, required: Literal[True] = True) -> Box: ...
@overload
def find_child(data: bytes, parent: Box, typ: bytes, name: str, *, required: bool) -> Box | None: ...
def find_child(data: bytes, parent: Box, typ: bytes, name: str, *, required: bool = True) -> Box | None:
    """Returns the first child of ``parent`` (a container box) with type ``typ`` (None only if not required)."""
    for box in iter_boxes(data, parent.payload_start, parent.end, name):
        if box.type == typ:
            return box
    if required:
        raise Mp4Error(f"{name}: box {parent.type.decode(errors='replace')} has no {typ.decode()} child")
    return None


@overload
def find_path(
    data: bytes, parent: Box, path: list[bytes], name: str, *, required: Literal[True] = True
) -> Box: ...
@overload
def find_path(data: bytes, parent: Box, path: list[bytes], name: str, *, required: bool) -> Box | None: ...
def find_path(data: bytes, parent: Box, path: list[bytes], name: str, *, required: bool = True) -> Box | None:
    """Follows a path of child types from ``parent``, e.g. ``[b"mdia", b"minf", b"stbl"]``."""
    box = parent
    for typ in path:
        child = find_child(data, box, typ, name, required=required)
        if child is None:
            return None
        box = child
    return box


class FullBoxReader:
    """Bounded reader over one box's payload that raises Mp4Error instead of reading past its end."""

    def __init__(self, data: bytes, box: Box, name: str, *, full: bool = True) -> None:
        self.data, self.box, self.name = data, box, name
        self.pos = box.payload_start
        self.version = 0
        self.flags = 0
        if full:
            vf = self.u32()
            self.version, self.flags = vf >> 24, vf & 0xFFFFFF

    @property
    def remaining(self) -> int:
        return self.box.end - self.pos

    def _need(self, n: int) -> None:
        if n > self.remaining:
            raise Mp4Error(
                f"{self.name}: box {self.box.type.decode(errors='replace')} at offset {self.box.start} is "
                f"truncated: needs {n} more bytes, has {self.remaining}"
            )

    def skip(self, n: int) -> None:
        self._need(n)
        self.pos += n

    def u8(self) -> int:
        self._need(1)
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        self._need(2)
        self.pos += 2
        return struct.unpack_from(">H", self.data, self.pos - 2)[0]

    def u32(self) -> int:
        self._need(4)
        self.pos += 4
        return struct.unpack_from(">I", self.data, self.pos - 4)[0]

    def u64(self) -> int:
        self._need(8)
        self.pos += 8
        return struct.unpack_from(">Q", self.data, self.pos - 8)[0]

    def table(self, count: int, fmt: str) -> memoryview:
        """Returns ``count`` fixed-size big-endian records of struct ``fmt`` as raw bytes, bounds-checked."""
        width = struct.calcsize(">" + fmt)
        self._need(count * width)
        view = memoryview(self.data)[self.pos : self.pos + count * width]
        self.pos += count * width
        return view

    def entry_count(self, width: int) -> int:
        """Reads a u32 entry count and checks ``count * width`` bytes are actually present."""
        count = self.u32()
        if count * width > self.remaining:
            raise Mp4Error(
                f"{self.name}: box {self.box.type.decode(errors='replace')} claims {count} entries of "
                f"{width} bytes but holds only {self.remaining} bytes"
            )
        return count
