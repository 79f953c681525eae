"""The one retry policy (core/retry.py): classification of the errors fsspec's backends raise, the explicit
options (denied, short reads), timeouts, and the read-timeout storage options (core/timeouts.py)."""

from __future__ import annotations

import asyncio

import aiohttp
import botocore.exceptions
import pytest
from fsspec.exceptions import FSTimeoutError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from lerobot_wds.core.errors import LeRobotWdsError, ShortReadError
from lerobot_wds.core.retry import (
    RetryError,
    RetryPolicy,
    is_denied,
    is_timeout,
    is_transient,
    read_with_retries,
    with_retries,
)
from lerobot_wds.core.timeouts import with_read_timeout
from lerobot_wds.reader.fetching.fetch import StreamConfig


def http_error(status: int) -> aiohttp.ClientResponseError:
    info = aiohttp.RequestInfo(URL("http://h/x"), "GET", CIMultiDictProxy(CIMultiDict()), URL("http://h/x"))
    return aiohttp.ClientResponseError(info, (), status=status, message="injected")


def boto_error(status: int, code: str) -> botocore.exceptions.ClientError:
    response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return botocore.exceptions.ClientError(response, "GetObject")  # type: ignore[arg-type]


def wrapped(cause: BaseException) -> FileNotFoundError:
    """What fsspec's HTTP filesystem raises when a metadata request failed."""
    try:
        raise FileNotFoundError("http://h/x") from cause
    except FileNotFoundError as e:
        return e


TRANSIENT = [
    ConnectionResetError(),
    ConnectionRefusedError(),
    TimeoutError(),
    OSError(5, "EIO"),
    http_error(503),
    http_error(500),
    http_error(429),
    http_error(408),
    boto_error(503, "SlowDown"),
    wrapped(http_error(503)),
    aiohttp.ClientPayloadError("cut"),
    asyncio.TimeoutError(),
    ShortReadError("short"),
]
PERMANENT = [
    FileNotFoundError(),
    PermissionError(),
    IsADirectoryError(),
    http_error(404),
    http_error(403),
    http_error(400),
    boto_error(403, "AccessDenied"),
    boto_error(404, "NoSuchKey"),
    wrapped(http_error(403)),
    ValueError("a bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=repr)
def test_transient(exc: BaseException) -> None:
    assert RetryPolicy().is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=repr)
def test_permanent(exc: BaseException) -> None:
    assert not RetryPolicy().is_transient(exc)


def test_the_options_are_the_only_differences() -> None:
    denied = [PermissionError(), http_error(403), boto_error(403, "AccessDenied"), wrapped(http_error(403))]
    assert all(is_denied(e) and RetryPolicy(retry_denied=True).is_transient(e) for e in denied)
    assert not any(is_denied(e) for e in [FileNotFoundError(), http_error(404), http_error(503)])
    assert not RetryPolicy(retry_short_reads=False).is_transient(ShortReadError("short"))
    # the module-level default is the policy without options (the converter and verify call it directly)
    assert all(is_transient(e) for e in TRANSIENT) and not any(is_transient(e) for e in PERMANENT)
    assert issubclass(RetryError, LeRobotWdsError)


def test_timeouts_anywhere_in_the_cause_chain() -> None:
    try:
        raise FSTimeoutError() from aiohttp.SocketTimeoutError("Timeout on reading data from socket")
    except FSTimeoutError as e:
        fsspec_timeout = e
    read_timeout = botocore.exceptions.ReadTimeoutError(endpoint_url="http://h/x")
    assert all(is_timeout(e) for e in [TimeoutError(), fsspec_timeout, read_timeout, aiohttp.SocketTimeoutError()])
    assert not any(is_timeout(e) for e in [ConnectionResetError(), http_error(503), ShortReadError("short")])


def test_with_retries_counts_backs_off_and_names_what() -> None:
    calls, retried = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    policy = RetryPolicy(attempts=3, backoff_s=0)
    assert with_retries(flaky, what="read x", policy=policy, on_retry=lambda a, e: retried.append(a)) == "ok"
    assert retried == [1, 2] and [policy.delay_s(a) for a in (1, 2, 3)] == [0, 0, 0]
    assert [RetryPolicy(backoff_s=0.5).delay_s(a) for a in (1, 2, 3)] == [0.5, 1.0, 2.0]
    with pytest.raises(RetryError, match=r"read y: still failing after 3 attempts \(ConnectionResetError: reset"):
        with_retries(lambda: (_ for _ in ()).throw(ConnectionResetError("reset")), what="read y", policy=policy)
    with pytest.raises(
        RetryError,
        match=r"read z: permanent error \(FileNotFoundError: http://h/x, caused by "
        r"ClientResponseError: 403",
    ):
        with_retries(lambda: (_ for _ in ()).throw(wrapped(http_error(403))), what="read z", policy=policy)
    # a missing file stays FileNotFoundError for the caller to name; a wrapped denial does not
    with pytest.raises(FileNotFoundError):
        read_with_retries(lambda: (_ for _ in ()).throw(FileNotFoundError("gone")), what="m", policy=policy)
    with pytest.raises(RetryError, match="permanent error"):
        read_with_retries(lambda: (_ for _ in ()).throw(wrapped(http_error(403))), what="m", policy=policy)
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_read_timeout_options() -> None:
    http = with_read_timeout("http://h/root", {"block_size": 0}, 2.0)
    timeout = http["client_kwargs"]["timeout"]
    assert (timeout.sock_read, timeout.sock_connect, timeout.total, http["block_size"]) == (2.0, 2.0, None, 0)
    mine = aiohttp.ClientTimeout(total=5)
    theirs = with_read_timeout("https://h/r", {"client_kwargs": {"timeout": mine}}, 2.0)
    assert theirs["client_kwargs"]["timeout"] is mine
    s3 = with_read_timeout("s3://b/r", {"config_kwargs": {"read_timeout": 9, "retries": {}}}, 2.0)
    assert s3["config_kwargs"] == {"read_timeout": 9, "connect_timeout": 2.0, "retries": {}}
    for url in ("/local/root", "file:///r", "simplecache::s3://b/r"):
        assert with_read_timeout(url, {"x": 1}, 2.0) == {"x": 1}
    assert with_read_timeout("http://h/r", {}, None) == {}
    assert StreamConfig(read_timeout_s=3).fs_options("s3://b/r")["config_kwargs"]["read_timeout"] == 3
    assert StreamConfig(retries=2, retry_denied=True).retry_policy() == RetryPolicy(3, 0.5, True, True)
    with pytest.raises(ValueError, match="read_timeout_s"):
        StreamConfig(read_timeout_s=0)
