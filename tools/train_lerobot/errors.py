"""train-lerobot's errors: could not start (exit 2) and failed once training had started (exit 1)."""

from __future__ import annotations

from lerobot_wds.core.errors import LeRobotWdsError


class TrainLerobotError(LeRobotWdsError):
    """train-lerobot cannot run as asked: flags that do not parse, an unsupported option or lerobot version."""


class TrainingFailed(LeRobotWdsError):
    """Training started (the dataset was built) and then failed; ``__cause__`` is what broke."""
