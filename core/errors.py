"""The base of every lerobot-wds domain error, the errors shared by converter, reader and tools, and the names
of the ``on_error`` policies both of them take."""

from __future__ import annotations

from typing import Literal

from lerobot_wds.core.redact import redact_text

OnError = Literal["raise", "skip"]  # raise on bad input, or skip it and record what was skipped


class LeRobotWdsError(Exception):
    """The root of every lerobot-wds domain error (bad input, unreachable data, failed checks).

    Messages say where (file, shard, episode, camera, member) and what was expected and found; the CLI prints
    them as one line and exits 1 or 2, never with a traceback. It lives in the core package, so the
    reader, the converter and the tools share it without importing each other. Every URL in the message loses
    its credentials (userinfo, signatures, tokens: :mod:`lerobot_wds.core.redact`), so no error can print or
    record them.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))


class InputError(LeRobotWdsError):
    """The input of a command is missing, unreadable or of the wrong kind: the command could not run (exit 2)."""


class FormatError(LeRobotWdsError, ValueError):
    """A converted root, manifest, shard or member does not follow the format contract."""


class ShardReadError(LeRobotWdsError, OSError):
    """A shard could not be read (after retries): missing, unreachable or shorter than the manifest says."""


class ShortReadError(ShardReadError):
    """A read returned a different number of bytes than planned (a cut transfer, or a file truncated at rest)."""


class RetryError(LeRobotWdsError, OSError):
    """An I/O operation failed permanently or ran out of retries; the message names the URL and reason."""
