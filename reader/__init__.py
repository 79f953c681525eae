"""Reader: a torch IterableDataset streaming converted shards with LeRobotDataset-identical samples.

Names are imported on first use (``import lerobot_wds.reader.format`` does not import torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lerobot_wds.reader.exports import lazy_exports

_EXPORTS = {
    "LeRobotWdsDataset": "lerobot_wds.reader.dataset",
    "dataloader": "lerobot_wds.reader.loader",
    "DecodeConfig": "lerobot_wds.reader.decode",
    "StreamConfig": "lerobot_wds.reader.stream",
    "RetryPolicy": "lerobot_wds.reader.retry",
    "Manifest": "lerobot_wds.reader.format",
    "ShardInfo": "lerobot_wds.reader.format",
    "EpisodeMeta": "lerobot_wds.reader.format",
    "CameraMeta": "lerobot_wds.reader.format",
    "LeRobotWdsError": "lerobot_wds.reader.format",
    "FormatError": "lerobot_wds.reader.format",
    "ShardReadError": "lerobot_wds.reader.errors",
    "ShardFormatError": "lerobot_wds.reader.errors",
    "IntegrityError": "lerobot_wds.reader.errors",
    "FrameDecodeError": "lerobot_wds.reader.errors",
    "ResumeError": "lerobot_wds.reader.resume",
}
__all__ = [
    "CameraMeta",
    "DecodeConfig",
    "EpisodeMeta",
    "FormatError",
    "FrameDecodeError",
    "IntegrityError",
    "LeRobotWdsDataset",
    "LeRobotWdsError",
    "Manifest",
    "ResumeError",
    "RetryPolicy",
    "ShardFormatError",
    "ShardInfo",
    "ShardReadError",
    "StreamConfig",
    "dataloader",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lerobot_wds.reader.dataset import LeRobotWdsDataset
    from lerobot_wds.reader.decode import DecodeConfig
    from lerobot_wds.reader.errors import FrameDecodeError, IntegrityError, ShardFormatError, ShardReadError
    from lerobot_wds.reader.format import (
        CameraMeta,
        EpisodeMeta,
        FormatError,
        LeRobotWdsError,
        Manifest,
        ShardInfo,
    )
    from lerobot_wds.reader.loader import dataloader
    from lerobot_wds.reader.resume import ResumeError
    from lerobot_wds.reader.retry import RetryPolicy
    from lerobot_wds.reader.stream import StreamConfig
