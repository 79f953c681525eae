"""Domain errors of the reader; each message says where (shard, member, episode, camera) and what was wrong."""

from __future__ import annotations

from lerobot_wds.core.errors import FormatError, InputError, LeRobotWdsError


class ShardFormatError(FormatError):
    """A shard or one of its members does not follow the format contract (corrupt tar, missing member...)."""


class FrameDecodeError(FormatError):
    """A mini-MP4 could not be decoded, or returned a frame at the wrong presentation time."""


class IntegrityError(ShardFormatError):
    """Bytes read from a shard do not match the manifest's digest (named by shard, and episode when known)."""


class ResumeError(LeRobotWdsError, ValueError):
    """A resume state that does not fit this reader: another version, seed or ranks x workers topology."""


class OptionError(LeRobotWdsError, ValueError):
    """A reader option has an invalid value (an unknown preset, a ``delta_timestamps`` key that is no feature)."""


class RootNotFoundError(InputError, FormatError):
    """The root given does not exist."""


class NotConvertedRootError(InputError, FormatError):
    """The root given is not a finished conversion: a LeRobot source, an unfinished conversion, or else."""


class UnfinishedConversionError(NotConvertedRootError):
    """The root holds a conversion that has not written its manifest yet (running, killed, or parts not merged)."""


class UnknownEpisodeError(OptionError):
    """``episodes=`` names an episode the root does not hold; the message gives the valid range."""
