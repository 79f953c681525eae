"""The MP4 layer: parse a track's sample index, cut a time span into a mini-MP4, write MP4s.

Samples are copied, never re-encoded, except by the opt-in :mod:`reencode` (``convert --reencode``).

Public surface (everything else in this package is an implementation detail):

- :func:`parse_track_index` -> :class:`TrackIndex`: the first video track's samples (offsets, sizes, dts/cts,
  keyframes) from ``read(offset, length)`` and the file size; every size is checked before it is used.
- :func:`cut_episode` -> :class:`Clip`: the frames presented in a time span as a self-contained mini-MP4.
- :func:`write_mp4` / :class:`SampleTable`: a faststart MP4 from copied samples.
- :func:`file_reader` / :func:`bytes_reader`: ``ReadFn`` over an fsspec file or in-memory bytes.
- :func:`reencode_clip` / :class:`EncodeSettings`: a clip's episode frames encoded again with a short GOP.
- :class:`Mp4Error`: anything malformed, naming the file and what was expected and found.
"""

from lerobot_wds.convert.errors import Mp4Error
from lerobot_wds.convert.mp4.boxes import ReadFn
from lerobot_wds.convert.mp4.cut import Clip, cut_episode
from lerobot_wds.convert.mp4.index import TrackIndex, parse_track_index
from lerobot_wds.convert.mp4.io import bytes_reader, file_reader
from lerobot_wds.convert.mp4.reencode import EncodeSettings, reencode_clip
from lerobot_wds.convert.mp4.write import SampleTable, write_mp4

__all__ = [
    "Clip",
    "EncodeSettings",
    "Mp4Error",
    "ReadFn",
    "SampleTable",
    "TrackIndex",
    "bytes_reader",
    "cut_episode",
    "file_reader",
    "parse_track_index",
    "reencode_clip",
    "write_mp4",
]
