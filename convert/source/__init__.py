"""The LeRobot v3 source reader: a dataset's meta, per-episode rows and camera tracks through fsspec.

Public surface: :class:`LeRobotSource` (open a local path or fsspec URL), its :class:`EpisodeRecord` /
:class:`VideoRef` rows, :func:`describe` (a summary for the manifest) and :class:`SourceError` (a source that
is not a valid LeRobot v3 dataset, naming the file).
"""

from lerobot_wds.convert.errors import SourceError
from lerobot_wds.convert.source.lerobot import EpisodeRecord, LeRobotSource, VideoRef, describe

__all__ = ["EpisodeRecord", "LeRobotSource", "SourceError", "VideoRef", "describe"]
