"""Converter: LeRobot v3 dataset -> episode-per-sample WebDataset tar shards plus a manifest.

Names are imported on first use. Subpackages: :mod:`lerobot_wds.convert.mp4` (the MP4 layer) and
:mod:`lerobot_wds.convert.source` (the LeRobot v3 source reader).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lerobot_wds.core.lazy_exports import lazy_exports

_EXPORTS = {
    "convert": "lerobot_wds.convert.pipeline",
    "ConvertConfig": "lerobot_wds.convert.config",
    "ConvertSummary": "lerobot_wds.convert.pipeline",
    "ConvertError": "lerobot_wds.convert.errors",
    "ConfigError": "lerobot_wds.convert.errors",
    "FinalizeError": "lerobot_wds.convert.errors",
}
__all__ = [
    "ConfigError",
    "ConvertConfig",
    "ConvertError",
    "ConvertSummary",
    "FinalizeError",
    "convert",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lerobot_wds.convert.config import ConvertConfig
    from lerobot_wds.convert.errors import ConfigError, ConvertError, FinalizeError
    from lerobot_wds.convert.pipeline import ConvertSummary, convert
