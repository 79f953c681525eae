"""Reader: a torch IterableDataset streaming converted shards with LeRobotDataset-identical samples.

Names are imported on first use (``import lerobot_wds.reader`` does not import torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lerobot_wds.core.lazy_exports import lazy_exports

_EXPORTS = {
    "LeRobotWdsDataset": "lerobot_wds.reader.dataset",
    "dataloader": "lerobot_wds.reader.loader",
    "DecodeConfig": "lerobot_wds.reader.decoding.decode",
    "AssembleConfig": "lerobot_wds.reader.assembling.config",
    "StreamConfig": "lerobot_wds.reader.fetching.fetch",
    "RetryPolicy": "lerobot_wds.core.retry",
    "Manifest": "lerobot_wds.core.format",
    "ShardInfo": "lerobot_wds.core.format",
    "EpisodeMeta": "lerobot_wds.core.format",
    "CameraMeta": "lerobot_wds.core.format",
    "LeRobotWdsError": "lerobot_wds.core.errors",
    "FormatError": "lerobot_wds.core.errors",
    "ShardReadError": "lerobot_wds.core.errors",
    "ShardFormatError": "lerobot_wds.reader.errors",
    "IntegrityError": "lerobot_wds.reader.errors",
    "FrameDecodeError": "lerobot_wds.reader.errors",
    "ResumeError": "lerobot_wds.reader.errors",
}
__all__ = [
    "AssembleConfig",
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
    from lerobot_wds.core.errors import FormatError, LeRobotWdsError, ShardReadError
    from lerobot_wds.core.format import CameraMeta, EpisodeMeta, Manifest, ShardInfo
    from lerobot_wds.core.retry import RetryPolicy
    from lerobot_wds.reader.assembling.config import AssembleConfig
    from lerobot_wds.reader.dataset import LeRobotWdsDataset
    from lerobot_wds.reader.decoding.decode import DecodeConfig
    from lerobot_wds.reader.errors import FrameDecodeError, IntegrityError, ResumeError, ShardFormatError
    from lerobot_wds.reader.fetching.fetch import StreamConfig
    from lerobot_wds.reader.loader import dataloader
