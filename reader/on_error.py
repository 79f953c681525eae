"""The ``on_error`` policy of the reader: raise on bad data, or skip it and count what was skipped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

from lerobot_wds.core.errors import OnError
from lerobot_wds.reader.errors import OptionError

log = logging.getLogger(__name__)


@dataclass
class ErrorCounter:
    """Counts what ``on_error="skip"`` skipped, with the last messages for diagnosis."""

    policy: OnError = "raise"
    skipped_shards: int = 0
    skipped_episodes: int = 0
    messages: list[str] = field(default_factory=list)
    on_skip: Callable[[ErrorCounter], None] | None = field(default=None, repr=False)  # after each skip

    def __post_init__(self) -> None:
        if self.policy not in get_args(OnError):
            raise OptionError(f"on_error={self.policy!r}; expected one of {list(get_args(OnError))}")

    def handle(self, error: Exception, kind: Literal["shard", "episode"]) -> None:
        """Re-raises under ``raise``; otherwise counts and logs the error."""
        if self.policy == "raise":
            raise error
        if kind == "shard":
            self.skipped_shards += 1
        else:
            self.skipped_episodes += 1
        self.messages = (self.messages + [str(error)])[-20:]
        log.warning("skipping %s: %s", kind, error)
        if self.on_skip is not None:
            self.on_skip(self)
