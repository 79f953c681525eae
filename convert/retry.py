"""The converter's face of :mod:`lerobot_wds.reader.retry`, the one retry policy (reader, converter, verify).

Same classification everywhere: transient = connection resets, timeouts, 5xx, throttling (408/429);
permanent = missing, denied (403 / PermissionError), other 4xx, which fail at once naming the URL and the
reason. The converter keeps ``RetryPolicy``'s defaults (``retry_denied=False``); these wrappers only take
its ``attempts`` / ``backoff_s`` arguments as the converter's config spells them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lerobot_wds.reader import retry as _retry
from lerobot_wds.reader.retry import RetryError, RetryPolicy, is_denied, is_timeout, is_transient

T = TypeVar("T")

__all__ = [
    "RetryError",
    "RetryPolicy",
    "is_denied",
    "is_timeout",
    "is_transient",
    "read_with_retries",
    "with_retries",
]


def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int,
    backoff_s: float,
    on_retry: Callable[[int, BaseException], None] | None = None,
    error: type[RetryError] = RetryError,
) -> T:
    """Runs ``fn``; retries transient errors with exponential backoff, else raises ``error`` naming ``what``."""
    policy = RetryPolicy(attempts=attempts, backoff_s=backoff_s)
    return _retry.with_retries(fn, what=what, policy=policy, on_retry=on_retry, error=error)


def read_with_retries(fn: Callable[[], T], *, what: str, attempts: int, backoff_s: float) -> T:
    """``with_retries`` for source reads: a missing file still raises FileNotFoundError for the caller to name."""
    return _retry.read_with_retries(fn, what=what, policy=RetryPolicy(attempts=attempts, backoff_s=backoff_s))
