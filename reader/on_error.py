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
    """Counts what ``on_error="skip"`` skipped, with the last messages for diagnosis.

    One counter lives for one reader's epoch: an episode is counted and logged the first time it fails; the
    reader's later passes over it (padding) skip it silently (:meth:`is_bad`).
    """

    policy: OnError = "raise"
    skipped_shards: int = 0
    skipped_episodes: int = 0
    messages: list[str] = field(default_factory=list)
    on_skip: Callable[[ErrorCounter], None] | None = field(default=None, repr=False)  # after each skip
    bad: set[int] = field(default_factory=set)  # episodes skipped in this epoch

    def __post_init__(self) -> None:
        if self.policy not in get_args(OnError):
            raise OptionError(f"on_error={self.policy!r}; expected one of {list(get_args(OnError))}")

    def is_bad(self, episode: int) -> bool:
        """Whether ``episode`` was skipped earlier in this epoch."""
        return episode in self.bad

    def handle(self, error: Exception, kind: Literal["shard", "episode"], episode: int | None = None) -> None:
        """Re-raises under ``raise``; otherwise counts and logs the error (an ``episode`` once per epoch)."""
        if self.policy == "raise":
            raise error
        if episode is not None:
            if episode in self.bad:
                return
            self.bad.add(episode)
        if kind == "shard":
            self.skipped_shards += 1
        else:
            self.skipped_episodes += 1
        self.messages = (self.messages + [str(error)])[-20:]
        log.warning("skipping %s: %s", kind, error)
        if self.on_skip is not None:
            self.on_skip(self)
