"""The LeRobot v3 source reader: a dataset's meta, per-episode rows and camera tracks through fsspec.

Public surface: :class:`LeRobotSource` (open a local path or fsspec URL), its :class:`EpisodeRecord` /
:class:`VideoRef` rows, :func:`describe` (the source's identity for the manifest: normalized location and
content fingerprint), :class:`SourceError` (a source that is not a valid LeRobot v3 dataset, naming the file)
and :class:`SourceInputError` (no such source, or no LeRobot dataset at all).
"""

from lerobot_wds.convert.errors import SourceError, SourceInputError
from lerobot_wds.convert.source.identity import describe, source_location
from lerobot_wds.convert.source.lerobot import LeRobotSource
from lerobot_wds.convert.source.table import EpisodeRecord, EpisodeTable, VideoRef

__all__ = [
    "EpisodeRecord",
    "EpisodeTable",
    "LeRobotSource",
    "SourceError",
    "SourceInputError",
    "VideoRef",
    "describe",
    "source_location",
]
