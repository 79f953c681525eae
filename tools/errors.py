"""The tools' domain errors (the CLI prints them as one line and exits 2)."""

from __future__ import annotations

from lerobot_wds.core.errors import LeRobotWdsError


class BenchError(LeRobotWdsError, RuntimeError):
    """A benchmark could not run as configured, or a loader delivered batches of the wrong shape."""
