"""Command-line tools: the ``lerobot-wds`` console script (convert, finalize, verify, inspect, bench, train, demo).

Subpackages: :mod:`lerobot_wds.tools.verify`, :mod:`lerobot_wds.tools.bench`, :mod:`lerobot_wds.tools.train`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lerobot_wds.core.lazy_exports import lazy_exports

_EXPORTS = {
    "main": "lerobot_wds.tools.cli",
    "Finding": "lerobot_wds.tools.report",
    "Report": "lerobot_wds.tools.report",
}
__all__ = [
    "Finding",
    "Report",
    "main",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lerobot_wds.tools.cli import main
    from lerobot_wds.tools.report import Finding, Report
