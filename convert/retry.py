"""Retrying transient I/O errors (source reads and destination writes) with exponential backoff.

Transient: connection resets, timeouts, 5xx, throttling (408/429). Permanent: missing, denied, other 4xx,
which fail at once naming the URL and the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from lerobot_wds.reader.format import LeRobotWdsError

T = TypeVar("T")

_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


class RetryError(LeRobotWdsError, OSError):
    """An I/O operation failed permanently or ran out of retries; the message names the URL and reason."""


def is_transient(exc: BaseException) -> bool:
    """Tells whether an I/O error is worth retrying: network/timeouts/5xx yes; missing, denied, 4xx no."""
    if isinstance(exc, FileNotFoundError) and exc.__cause__ is not None and exc.__cause__ is not exc:
        # fsspec's HTTP filesystem reports any failed metadata request (a 503 too) as FileNotFoundError
        return is_transient(exc.__cause__)
    if isinstance(exc, _PERMANENT):
        return False
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    else:
        status = getattr(response, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
        return False
    if isinstance(exc, (OSError, TimeoutError, ConnectionError)):
        return True
    # aiohttp / botocore errors don't subclass OSError; match by module so neither is a hard dependency
    module = type(exc).__module__
    return module.startswith(("aiohttp", "botocore", "urllib3", "requests"))


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
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                raise error(f"{what}: permanent error ({type(e).__name__}: {e})") from e
            if attempt == attempts:
                raise error(f"{what}: still failing after {attempts} attempts ({type(e).__name__}: {e})") from e
            if on_retry is not None:
                on_retry(attempt, e)
            time.sleep(backoff_s * 2 ** (attempt - 1))  # retry backoff, the one sleep allowed in error paths
    raise AssertionError("unreachable")  # the loop returns or raises


def read_with_retries(fn: Callable[[], T], *, what: str, attempts: int, backoff_s: float) -> T:
    """``with_retries`` for source reads: a missing file still raises FileNotFoundError for the caller to name."""
    try:
        return with_retries(fn, what=what, attempts=attempts, backoff_s=backoff_s)
    except RetryError as e:
        if isinstance(e.__cause__, FileNotFoundError) and not is_transient(e.__cause__):
            raise e.__cause__ from None
        raise
