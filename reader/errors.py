"""Domain errors of the reader; each message says where (shard, member, episode, camera) and what was wrong."""

from __future__ import annotations

from lerobot_wds.reader.format import FormatError, LeRobotWdsError


class ShardReadError(LeRobotWdsError, OSError):
    """A shard could not be read (after retries): missing, unreachable or shorter than the manifest says."""


class ShardFormatError(FormatError):
    """A shard or one of its members does not follow the format contract (corrupt tar, missing member...)."""


class FrameDecodeError(FormatError):
    """A mini-MP4 could not be decoded, or returned a frame at the wrong presentation time."""


class IntegrityError(ShardFormatError):
    """Bytes read from a shard do not match the manifest's digest (named by shard, and episode when known)."""


class ShortReadError(ShardReadError):
    """A read returned a different number of bytes than planned (a cut transfer, or a file truncated at rest)."""
