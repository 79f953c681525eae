"""Helpers of the wire-fault tests: a deadline that turns a hang into a failure, and one checked reader epoch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import pytest

from lerobot_wds.testing.shards import read_identity

T = TypeVar("T")
DEADLINE_S = 180.0  # far above any run here; only a hang reaches it


def within_deadline(fn: Callable[[], T], seconds: float = DEADLINE_S) -> T:
    """Runs ``fn`` in a daemon thread and returns its result; fails the test if it has not ended in ``seconds``.

    Not a timing assertion: the deadline only turns a hang (a read that never times out) into a failure. A
    daemon thread, so a hung one does not keep the test process alive either.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the test's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="wire-fault-run", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: a stalled read hangs instead of timing out")
    if "error" in box:
        raise box["error"]
    return box["value"]


def checked_epoch(
    samples: Iterable[dict[str, Any]], camera: str, after_first: Callable[[], None] | None = None
) -> list[tuple[int, int]]:
    """Iterates an epoch of samples, checking each frame's pixels encode its (episode, frame) identity.

    ``after_first`` runs once the first sample arrived (e.g. to stop the server mid-run).
    Returns the (episode, frame) of every sample in order.
    """
    got = []
    for i, sample in enumerate(samples):
        key = (int(sample["episode_index"]), int(sample["frame_index"]))
        assert read_identity(sample[camera])[:2] == key, f"sample {i}: pixels are not frame {key}"
        got.append(key)
        if i == 0 and after_first is not None:
            after_first()
    return got


class OnFirstRetry(logging.Handler):
    """Calls ``action`` once, when the reader logs its first failed read attempt (in the reading thread)."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.action = action
        self.seen = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "attempt" in record.getMessage():
            self.seen += 1
            if self.seen == 1:
                self.action()
