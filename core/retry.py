"""The one retry policy of reader, converter and ``verify``: which errors are transient, how often to retry.

Transient (retried with capped exponential backoff and full jitter): connection resets and refusals, timeouts
(a stalled server), bodies cut mid-transfer, 5xx, throttling (408/429, S3's SlowDown), and a read shorter than
planned from a remote store. Permanent (fail at once, naming the cause): missing (404 / ``FileNotFoundError``),
denied (403 / ``PermissionError``), other 4xx, missing or invalid credentials (botocore's
``NoCredentialsError`` and its kin), an ``OSError`` whose errno says the machine itself failed (a full disk
``ENOSPC``, ``EIO``, a read-only file system...; only network errnos such as ``ECONNRESET`` or s3fs's 503
``EBUSY`` are transient), and any error that is not I/O (a bug is not retried).

What differs between callers is an explicit option of :class:`RetryPolicy`:

- ``retry_denied`` (default False): a 403 / ``PermissionError`` is permanent, so wrong credentials or a
  private bucket fail on the first request naming the file instead of after every backoff. A store whose
  permissions settle late (fresh IAM grants, rotating presigned URLs) can opt in.
- ``retry_short_reads`` (default True): a read that came back shorter than planned (:class:`ShortReadError`,
  raised by the reader when a body's length differs from the manifest's) is retried: on an object store it
  is usually a cut transfer. Callers reading a local file turn it off (:func:`is_local`): a file truncated
  at rest fails the same way on every attempt.

How fsspec's backends report failures (checked against fsspec/s3fs/aiohttp sources): the HTTP filesystem
raises ``FileNotFoundError`` for a 404 and for *any* failed metadata request (its ``__cause__`` is the real
aiohttp error, a 503 too), and ``aiohttp.ClientResponseError`` (``.status``) for a failed GET; a stall raises
``aiohttp.SocketTimeoutError`` (a ``TimeoutError``). s3fs translates botocore errors into ``OSError``
subclasses (403 -> ``PermissionError``, 404 -> ``FileNotFoundError``, 503 -> ``OSError(EBUSY)``) and retries
transport errors (read timeouts, cut bodies) itself, ``S3FileSystem.retries`` (5) times, before they reach
this policy.

Backoff uses full jitter: the wait before retry ``n`` is uniform in
``[0, min(max_backoff_s, backoff_s * 2**(n-1))]``, so hundreds of readers hitting a throttled bucket at once
spread their retries instead of retrying in lockstep. The draws come from the operating system's entropy by
default (a fork does not copy it, so DataLoader workers never share a sequence); tests pass a seeded
``random.Random``.
"""

from __future__ import annotations

import errno
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lerobot_wds.core.errors import RetryError, ShortReadError

T = TypeVar("T")

_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
_THROTTLED = (408, 429)  # 4xx answers that mean "later", not "never"
# errnos of the network and of a busy store (s3fs reports a 503 as EBUSY): any other errno is the machine's own
# failure (ENOSPC, EIO, EROFS, EMFILE...) and does not heal by waiting
_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNREFUSED,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EPIPE,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.EHOSTDOWN,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        socket.EAI_AGAIN,  # "temporary failure in name resolution"
    }
)
# botocore errors (by name, botocore is no hard dependency) that no retry can fix: credentials and configuration
_CONFIG_ERRORS = ("Credential", "Token", "ProfileNotFound", "NoRegion", "ConfigNotFound", "ParamValidation")
_LOCAL_PROTOCOLS = ("file", "local")
_JITTER = random.SystemRandom()  # OS entropy: unlike a seeded Random, never the same in two processes


def _unwrap(exc: BaseException) -> BaseException:
    """fsspec's HTTP filesystem reports any failed metadata request as FileNotFoundError from the real error."""
    while isinstance(exc, FileNotFoundError) and exc.__cause__ is not None and exc.__cause__ is not exc:
        exc = exc.__cause__
    return exc


def describe(exc: BaseException) -> str:
    """``Type: message``, and the error fsspec's "not found" wraps when there is one (a 403, a 503...)."""
    inner = _unwrap(exc)
    while not str(inner) and inner.__cause__ is not None:  # fsspec's FSTimeoutError says nothing itself
        inner = inner.__cause__
    text = f"{type(exc).__name__}: {exc}"
    return text if inner is exc else f"{text}, caused by {type(inner).__name__}: {inner}"


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an error carries (aiohttp ``.status``, botocore ``response``, requests), else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    else:
        status = getattr(response, "status_code", None) or getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def is_denied(exc: BaseException) -> bool:
    """A 403 or ``PermissionError`` (also behind fsspec's FileNotFoundError wrapping)."""
    exc = _unwrap(exc)
    return isinstance(exc, PermissionError) or status_of(exc) == 403


def is_local(url: str) -> bool:
    """Whether ``url`` names a local file (a plain path or ``file://``): its errors do not heal by waiting."""
    scheme, sep, _ = url.partition("://")
    return not sep or scheme in _LOCAL_PROTOCOLS


def is_transient(exc: BaseException) -> bool:
    """The default classification: network, timeouts, cut bodies, 5xx, 408/429 yes; missing, denied, 4xx,
    credentials, a full disk or an I/O error of the machine no."""
    exc = _unwrap(exc)
    if isinstance(exc, _PERMANENT):
        return False
    name = type(exc).__name__
    if type(exc).__module__.startswith("botocore") and any(word in name for word in _CONFIG_ERRORS):
        return False
    status = status_of(exc)
    if status is not None and 400 <= status < 500 and status not in _THROTTLED:
        return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno is None or exc.errno in _TRANSIENT_ERRNOS
    # aiohttp / botocore errors don't subclass OSError; match by module so neither is a hard dependency
    module = type(exc).__module__
    return module.startswith(("aiohttp", "botocore", "aiobotocore", "urllib3", "requests"))


def is_timeout(exc: BaseException) -> bool:
    """A read or connect timeout anywhere in the error's cause chain (aiohttp, botocore, fsspec, socket)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        # TimeoutError covers socket.timeout, asyncio.TimeoutError, aiohttp's and aiobotocore's timeouts and
        # fsspec's FSTimeoutError; botocore's ReadTimeoutError / ConnectTimeoutError only by name
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:
            return True
        e = e.__cause__ or e.__context__
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry, and the options where callers classify errors differently.

    Attributes:
        attempts: tries in all (1: no retry).
        backoff_s: the longest wait before the first retry; the bound doubles on every further one.
        retry_denied: treat 403 / ``PermissionError`` as transient (default: permanent, fail at once).
        retry_short_reads: treat a read shorter than planned (:class:`ShortReadError`) as transient.
        max_backoff_s: the bound never exceeds this (the wait is drawn uniformly below the bound).
    """

    attempts: int = 4
    backoff_s: float = 0.5
    retry_denied: bool = False
    retry_short_reads: bool = True
    max_backoff_s: float = 20.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.backoff_s < 0:
            raise ValueError(f"RetryPolicy.backoff_s must be >= 0, got {self.backoff_s}")
        if self.max_backoff_s < 0:
            raise ValueError(f"RetryPolicy.max_backoff_s must be >= 0, got {self.max_backoff_s}")

    def is_transient(self, exc: BaseException) -> bool:
        """This policy's classification: :func:`is_transient` with the options applied."""
        if isinstance(exc, ShortReadError):
            return self.retry_short_reads
        if is_denied(exc):
            return self.retry_denied
        return is_transient(exc)

    def max_delay_s(self, attempt: int) -> float:
        """The bound of the wait after failed attempt number ``attempt`` (1-based): exponential, capped."""
        return min(self.max_backoff_s, self.backoff_s * 2.0 ** (attempt - 1))

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based): uniform in ``[0, max_delay_s(attempt)]``.

        ``rng`` draws the wait (default: the operating system's entropy; pass a seeded one for repeatable runs).
        """
        return (rng or _JITTER).uniform(0.0, self.max_delay_s(attempt))


def with_retries(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    on_retry: Callable[[int, BaseException], None] | None = None,
    error: Callable[[str], BaseException] = RetryError,
    rng: random.Random | None = None,
) -> T:
    """Runs ``fn``; retries transient errors with backoff, else raises ``error`` naming ``what`` (cause chained).

    ``on_retry(attempt, exc)`` is called before each retry (for logging and counting); ``rng`` draws the jittered
    waits (see :meth:`RetryPolicy.delay_s`).
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as e:
            if not policy.is_transient(e):
                raise error(f"{what}: permanent error ({describe(e)})") from e
            if attempt == policy.attempts:
                raise error(f"{what}: still failing after {attempt} attempts ({describe(e)})") from e
            if on_retry is not None:
                on_retry(attempt, e)
            time.sleep(policy.delay_s(attempt, rng))  # retry backoff, the one sleep allowed in error paths
    raise AssertionError("unreachable")  # the loop returns or raises


def read_with_retries(fn: Callable[[], T], *, what: str, policy: RetryPolicy) -> T:
    """``with_retries`` for reads: a missing file still raises FileNotFoundError for the caller to name (also
    one whose folder is a file: ``NotADirectoryError`` becomes FileNotFoundError)."""
    try:
        return with_retries(fn, what=what, policy=policy)
    except RetryError as e:
        cause = e.__cause__
        if isinstance(cause, NotADirectoryError):
            raise FileNotFoundError(errno.ENOENT, str(cause), cause.filename) from None
        if isinstance(cause, FileNotFoundError) and not policy.is_transient(cause) and not is_denied(cause):
            raise cause from None  # really missing (not a wrapped 403 / 503)
        raise
