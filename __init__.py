"""lerobot-wds: LeRobot v3 video datasets as episode-per-sample WebDataset shards, streamed fast.

This file is the root of the installed ``lerobot_wds`` package (``pyproject.toml`` maps the repository
root to it and the ``convert/``, ``reader/`` and ``tools/`` folders to its subpackages). It re-exports
the reader's public surface lazily so ``import lerobot_wds`` stays cheap and never imports the converter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lerobot_wds.core.lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "LeRobotWdsDataset": "lerobot_wds.reader.dataset",
    "LeRobotWdsError": "lerobot_wds.core.errors",
    "dataloader": "lerobot_wds.reader.loader",
}
__all__ = ["LeRobotWdsDataset", "LeRobotWdsError", "__version__", "dataloader"]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lerobot_wds.core.errors import LeRobotWdsError
    from lerobot_wds.reader.dataset import LeRobotWdsDataset
    from lerobot_wds.reader.loader import dataloader
