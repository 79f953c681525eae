"""The converter's domain errors; each message names the file, episode, camera or member and what was wrong."""

from __future__ import annotations

from lerobot_wds.core.errors import InputError, LeRobotWdsError, RetryError
from lerobot_wds.core.redact import redact_text


class SinkError(RetryError):
    """A write to the destination failed permanently (or ran out of retries); names the URL and reason."""


class SourceError(LeRobotWdsError, ValueError):
    """The source dataset is not a valid LeRobot v3 dataset or lacks an episode's rows; names the file."""


class ConfigError(LeRobotWdsError, ValueError):
    """A converter option has an invalid value."""


class TarWriteError(LeRobotWdsError, ValueError):
    """A sample's members break the shard layout (duplicate key, name without the sample key...)."""


class StagingError(LeRobotWdsError):
    """Local staging failed (no space left, quota, permissions); names the file, what it needed, the space left."""


class Mp4Error(LeRobotWdsError, ValueError):
    """An MP4 file is malformed or unsupported; the message names the file and the problem."""


class PlanError(LeRobotWdsError, ValueError):
    """The requested episodes or part cannot be planned (e.g. an unknown episode index)."""


class FinalizeError(LeRobotWdsError, ValueError):
    """Parts are missing or disagree, or a shard is missing or has the wrong size; names which."""


class EpisodeError(LeRobotWdsError, ValueError):
    """An episode cannot be converted because its input is bad; the message names episode/camera/file."""

    def __init__(self, episode_index: int, reason: str) -> None:
        super().__init__(f"episode {episode_index}: {reason}")
        self.episode_index = episode_index
        self.reason = redact_text(reason)  # recorded in the manifest: never a credential


class ConvertError(LeRobotWdsError, ValueError):
    """The destination holds an incompatible conversion, or a run cannot proceed; names what and where."""


class SourceInputError(SourceError, InputError):
    """The source does not exist or is no LeRobot v3 dataset at all (no meta/info.json): could not run."""


class FinalizeInputError(FinalizeError, InputError):
    """The root given to finalize holds no conversion at all (a wrong or missing folder): could not run."""


class DestInputError(ConvertError, InputError):
    """DEST is the source, inside or around it, a file, or an unrelated non-empty folder: could not run."""
