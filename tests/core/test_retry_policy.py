"""The one retry policy (core/retry.py): classification of the errors fsspec's backends raise, the explicit
options (denied, short reads), timeouts, and the read-timeout storage options (core/timeouts.py)."""

from __future__ import annotations

import asyncio
import errno
import random

import aiohttp
import botocore.exceptions
import pytest
from fsspec.exceptions import FSTimeoutError
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from lerobot_wds.core.errors import LeRobotWdsError, RetryError, ShardReadError, ShortReadError
from lerobot_wds.core.retry import (
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
    OSError(errno.ECONNRESET, "reset"),
    OSError(errno.EBUSY, "503 from s3fs"),
    OSError("no errno (aiohttp's client errors)"),
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
    botocore.exceptions.NoCredentialsError(),
    botocore.exceptions.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
    botocore.exceptions.NoRegionError(),
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EIO, "Input/output error"),
    OSError(errno.EROFS, "Read-only file system"),
    OSError(errno.EMFILE, "Too many open files"),
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


def test_backoff_has_full_jitter_under_an_exponential_cap() -> None:
    """Each wait is uniform in [0, min(max_backoff_s, backoff_s * 2**(n-1))]; a seeded rng repeats the waits."""
    policy = RetryPolicy(attempts=12, backoff_s=0.5, max_backoff_s=4.0)
    assert [policy.max_delay_s(a) for a in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    rng = random.Random(7)
    waits = {a: [policy.delay_s(a, rng) for _ in range(2000)] for a in (1, 3, 6)}
    for a, got in waits.items():
        bound = policy.max_delay_s(a)
        assert all(0.0 <= w <= bound for w in got)
        # full jitter: spread over the whole interval, not bunched at the bound (mean ~ bound / 2)
        assert min(got) < 0.05 * bound and max(got) > 0.95 * bound
        assert abs(sum(got) / len(got) - bound / 2) < 0.05 * bound
    again = random.Random(7)
    assert [policy.delay_s(1, again) for _ in range(5)] == waits[1][:5]
    assert RetryPolicy(backoff_s=0.5).max_delay_s(30) == RetryPolicy().max_backoff_s == 20.0
    # the default draws differ between calls (no shared seed, so readers do not retry in lockstep)
    assert len({RetryPolicy(backoff_s=1.0).delay_s(1) for _ in range(20)}) > 1
    with pytest.raises(ValueError, match="max_backoff_s"):
        RetryPolicy(max_backoff_s=-1)


def test_with_retries_waits_are_drawn_from_the_given_rng() -> None:
    """with_retries sleeps the policy's jittered waits, drawn from the rng it is given (0.01 s bound here)."""
    policy = RetryPolicy(attempts=3, backoff_s=0.004, max_backoff_s=0.01)
    expected_rng, rng = random.Random(3), random.Random(3)
    expected = [policy.delay_s(a, expected_rng) for a in (1, 2)]
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    assert with_retries(flaky, what="read w", policy=policy, rng=rng) == "ok"
    # the rng advanced by exactly the two waits drawn: its next draw is the expected sequence's third
    assert rng.random() == expected_rng.random() and len(expected) == 2 and len(calls) == 3


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


def _attempts(exc: BaseException) -> tuple[int, str]:
    """Calls that raise ``exc`` every time under a 4-attempt policy: (attempts made, the error's message)."""
    calls = []

    def failing() -> None:
        calls.append(1)
        raise exc

    with pytest.raises(RetryError) as info:
        with_retries(failing, what="read x", policy=RetryPolicy(attempts=4, backoff_s=0))
    return len(calls), str(info.value)


def test_credentials_and_a_full_disk_fail_at_once_naming_the_cause() -> None:
    assert _attempts(botocore.exceptions.NoCredentialsError()) == (
        1,
        "read x: permanent error (NoCredentialsError: Unable to locate credentials)",
    )
    assert _attempts(OSError(errno.ENOSPC, "No space left on device")) == (
        1,
        "read x: permanent error (OSError: [Errno 28] No space left on device)",
    )
    assert _attempts(OSError(errno.EIO, "Input/output error"))[0] == 1
    assert _attempts(boto_error(503, "SlowDown"))[0] == 4  # throttling is retried


def test_a_503_from_the_loopback_server_is_retried(http_dir_server, tmp_path) -> None:
    from lerobot_wds.reader.fetching.fetch import ReadCounters, fetch_read
    from lerobot_wds.reader.planning.reads import Read
    from lerobot_wds.testing.shards import RootSpec, make_root

    manifest = make_root(tmp_path, RootSpec(lengths=(3,), episodes_per_shard=1, cameras=("observation.images.c",)))
    shard = manifest.shards[0]
    server = http_dir_server(tmp_path)
    server.inject_fault(f"/{shard.path}", fail_requests=2, status=503)
    read = Read(f"{server.url}/{shard.path}", shard, None, None, tuple(shard.episodes), tuple(shard.extents))
    counters = ReadCounters()
    fetched = fetch_read(read, StreamConfig(retries=3, backoff_s=0), counters)
    assert len(fetched.data) == shard.bytes and not fetched.failures
    assert counters.retries == 2 and len(server.stats().for_path(f"/{shard.path}")) == 3


def test_a_local_short_read_is_not_retried(tmp_path) -> None:
    from lerobot_wds.reader.fetching.fetch import ReadCounters, fetch_read
    from lerobot_wds.reader.planning.reads import Read
    from lerobot_wds.testing.shards import RootSpec, make_root

    manifest = make_root(tmp_path, RootSpec(lengths=(3,), episodes_per_shard=1, cameras=("observation.images.c",)))
    shard = manifest.shards[0]
    path = tmp_path / shard.path
    path.write_bytes(path.read_bytes()[:1000])
    read = Read(str(path), shard, None, None, tuple(shard.episodes), tuple(shard.extents))
    counters = ReadCounters()
    with pytest.raises(ShardReadError, match=r"permanent error \(ShortReadError: .*got 1000 bytes"):
        fetch_read(read, StreamConfig(retries=3, backoff_s=0), counters)
    assert counters.retries == 0
    remote = StreamConfig().retry_policy("s3://bucket/root/shards/shard-000000.tar")
    assert remote.is_transient(ShortReadError("cut")) and not StreamConfig().retry_policy(str(path)).is_transient(
        ShortReadError("short at rest")
    )
