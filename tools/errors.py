"""The tools' domain errors (the CLI prints them as one line and exits 2)."""

from __future__ import annotations

from lerobot_wds.core.errors import LeRobotWdsError


class BenchError(LeRobotWdsError, RuntimeError):
    """A benchmark could not run as configured, or a loader delivered batches of the wrong shape."""


class DemoError(LeRobotWdsError):
    """The demo's pipeline did not deliver what it shows (e.g. the loader yielded no batch)."""


class CheckpointError(LeRobotWdsError):
    """A training checkpoint cannot be published: a rank's part is missing."""
