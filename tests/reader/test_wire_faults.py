"""Faults on the wire for the reader: a real loopback HTTP server and moto's S3 behind a fault proxy.

Each fault (503 burst, connection reset mid-body, a server that stalls mid-body, a restart during the run)
is armed on a shard; the epoch must deliver every (episode, frame) exactly once, each frame's pixels carrying
its identity, and ``stats()`` must count the retries and read timeouts exactly as armed (``num_workers=0``:
the reads run in this process). A stall must raise a read timeout (``StreamConfig.read_timeout_s``, 1 s
here) and be retried, never hang: every epoch runs under a deadline.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader
from wire_helpers import OnFirstRetry, checked_epoch, within_deadline

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.core.errors import ShardReadError
from lerobot_wds.reader.fetching.fetch import StreamConfig
from lerobot_wds.testing.shards import RootSpec, make_root

CAM = "observation.images.c"
SPEC = RootSpec(lengths=(5, 6, 4, 7), episodes_per_shard=2, cameras=(CAM,))
EXPECTED = sorted((e, k) for e, n in enumerate(SPEC.lengths) for k in range(n))
SHARD = "shards/shard-000000.tar"  # episodes 0 and 1: read whole (no split first read), one GET per attempt
TIMEOUT_S = 1.0
RESTART_STREAM = StreamConfig(
    retries=6, backoff_s=0.05, read_timeout_s=TIMEOUT_S, readahead=0, split_first_read=False
)
ONE_AT_A_TIME = {"active_episodes": 1, "shuffle": False}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wire_root")
    make_root(path, SPEC)
    return path


def stream(**kw: Any) -> StreamConfig:
    return StreamConfig(retries=5, backoff_s=0.01, read_timeout_s=TIMEOUT_S, split_first_read=False, **kw)


def run_epoch(url: str, cfg: StreamConfig, after_first: Any = None, **options: Any) -> tuple[list, dict]:
    ds = LeRobotWdsDataset(url, seed=3, stream=cfg, **options)
    got = within_deadline(lambda: checked_epoch(ds, CAM, after_first))
    return got, ds.stats()


# --- loopback HTTP ------------------------------------------------------------------------------------------

HTTP_FAULTS = {
    # fault: (inject_fault arguments, the server's fault kind, retries, timeouts)
    "503 burst": (dict(fail_requests=3), "status", 3, 0),
    "reset mid-body": (dict(reset_requests=2, reset_after_bytes=1000), "reset", 2, 0),
    "stall mid-body": (dict(stall_requests=1, stall_after_bytes=1000), "stall", 1, 1),
}


@pytest.mark.parametrize("fault", list(HTTP_FAULTS))
def test_http_fault_epoch_exactly_once_and_counted(root: Path, http_dir_server, fault: str) -> None:
    arm, kind, retries, timeouts = HTTP_FAULTS[fault]
    server = http_dir_server(root)
    server.inject_fault(f"/{SHARD}", **arm)
    got, stats = run_epoch(server.url, stream())
    assert sorted(got) == EXPECTED
    assert (stats["read_retries"], stats["read_timeouts"]) == (retries, timeouts)
    served = server.stats()
    assert served.faults(kind) == served.faults_served == retries
    gets = [r for r in served.for_path(f"/{SHARD}") if r.method == "GET"]
    assert [r.fault for r in gets] == [kind] * retries + [None]  # every failed attempt asked again, then done


def test_http_server_restart_mid_run(root: Path, http_dir_server) -> None:
    """Stopped after the first sample, the server comes back 0.3 s after the reader's first failed attempt.

    One open episode and no read-ahead: the reads of the other episodes come after the first sample.
    """
    server = http_dir_server(root)
    back = OnFirstRetry(lambda: threading.Timer(0.3, server.start).start())
    logger = logging.getLogger("lerobot_wds.reader.fetching.fetch")
    logger.addHandler(back)
    try:
        # backoff 0.05 s doubling over 6 retries waits 3.15 s in all: the outage fits the retry budget
        got, stats = run_epoch(server.url, RESTART_STREAM, after_first=server.stop, **ONE_AT_A_TIME)
    finally:
        logger.removeHandler(back)
    assert sorted(got) == EXPECTED
    assert back.seen == stats["read_retries"] >= 1 and stats["read_timeouts"] == 0
    assert server.stats().requests > 0


def test_http_403_is_permanent_unless_retry_denied(root: Path, http_dir_server) -> None:
    server = http_dir_server(root)
    server.inject_fault(f"/{SHARD}", fail_requests=2, status=403)
    with pytest.raises(ShardReadError, match=rf"shard {server.url}/{SHARD}: permanent error .*403"):
        run_epoch(server.url, stream(readahead=0))  # no read-ahead: nothing goes on reading after the error
    assert len(server.stats().for_path(f"/{SHARD}")) == 1  # failed at once: no retry
    # the explicit option makes a denial transient: the second 403 and then the shard are read
    got, stats = run_epoch(server.url, stream(retry_denied=True))
    assert sorted(got) == EXPECTED and stats["read_retries"] == 1


def test_http_404_names_the_missing_shard_at_once(root: Path, http_dir_server) -> None:
    server = http_dir_server(root)
    server.inject_fault(f"/{SHARD}", fail_requests=1, status=404)
    with pytest.raises(ShardReadError, match=rf"shard {server.url}/{SHARD}: not found .*; the manifest lists it"):
        run_epoch(server.url, stream(readahead=0))
    assert [r.status for r in server.stats().for_path(f"/{SHARD}")] == [404]


def test_http_503_burst_in_a_worker_is_counted_in_the_main_process(root: Path, http_dir_server) -> None:
    """The reads run in DataLoader workers; the main process's ``stats()`` sums their counts (reader board)."""
    server = http_dir_server(root)
    server.inject_fault(f"/{SHARD}", fail_requests=3)
    ds = LeRobotWdsDataset(server.url, seed=3, stream=stream(), batch_size=4)
    loader = DataLoader(ds, batch_size=None, num_workers=2)

    def epoch() -> list[tuple[int, int]]:
        got = []
        for batch in loader:
            for i in range(len(batch["episode_index"])):
                got += checked_epoch([{k: v[i] for k, v in batch.items() if torch.is_tensor(v)}], CAM)
        return got

    assert sorted(within_deadline(epoch)) == EXPECTED
    assert [r.status for r in server.stats().for_path(f"/{SHARD}")][:3] == [503, 503, 503]
    stats = ds.stats()
    assert (stats["read_retries"], stats["read_timeouts"]) == (3, 0)
    assert sorted(within_deadline(epoch)) == EXPECTED  # the next epoch: its own counts, nothing failed
    assert (ds.stats()["read_retries"], ds.stats()["read_timeouts"]) == (0, 0)


# --- moto S3 behind the fault proxy --------------------------------------------------------------------------


def s3_root(root: Path, s3_bucket) -> str:
    s3_bucket.fs.put(str(root), s3_bucket.url("root"), recursive=True)
    return s3_bucket.url("root")


def via(s3_bucket, proxy) -> dict[str, Any]:
    """Options through the proxy, with fsspec's instance cache (one client for all reads, as users have)."""
    return {**s3_bucket.via(proxy), "skip_instance_cache": False}


def _s3fs_retries() -> int:
    import s3fs

    return s3fs.S3FileSystem.retries  # s3fs retries cut bodies and read timeouts this often itself


S3_FAULTS = {
    # fault: (arm(proxy, n), armed count(n), the proxy's fault kind, retries, timeouts); n: s3fs's own retries
    "503 burst": (lambda p, n: p.fail_next_gets(3, SHARD), lambda n: 3, "status", 3, 0),
    "reset mid-body, within s3fs's retries": (
        lambda p, n: p.reset_next_gets(1, SHARD, 1000),
        lambda n: 1,
        "reset",
        0,
        0,
    ),
    "reset mid-body, beyond s3fs's retries": (
        lambda p, n: p.reset_next_gets(n, SHARD, 1000),
        lambda n: n,
        "reset",
        1,
        0,
    ),
    "stall mid-body, beyond s3fs's retries": (
        lambda p, n: p.stall_next_gets(n, SHARD, 1000),
        lambda n: n,
        "stall",
        1,
        1,
    ),
}


@pytest.mark.parametrize("fault", list(S3_FAULTS))
def test_s3_fault_epoch_exactly_once_and_counted(root: Path, s3_bucket, s3_proxy, fault: str) -> None:
    arm, armed, kind, retries, timeouts = S3_FAULTS[fault]
    url = s3_root(root, s3_bucket)
    n = _s3fs_retries()
    arm(s3_proxy, n)
    got, stats = run_epoch(url, stream(storage_options=via(s3_bucket, s3_proxy)))
    assert sorted(got) == EXPECTED
    assert s3_proxy.faults(kind) == armed(n)
    assert (stats["read_retries"], stats["read_timeouts"]) == (retries, timeouts)
    shard_gets = [f for m, path, _, f in s3_proxy.log if m == "GET" and path.endswith(SHARD)]
    assert shard_gets == [kind] * armed(n) + [None]


def test_s3_endpoint_restart_mid_run(root: Path, s3_bucket, s3_proxy) -> None:
    url = s3_root(root, s3_bucket)
    back = OnFirstRetry(lambda: threading.Timer(0.3, s3_proxy.start).start())
    logger = logging.getLogger("lerobot_wds.reader.fetching.fetch")
    logger.addHandler(back)
    try:
        cfg = replace(RESTART_STREAM, storage_options=via(s3_bucket, s3_proxy))
        got, stats = run_epoch(url, cfg, after_first=s3_proxy.stop, **ONE_AT_A_TIME)
    finally:
        logger.removeHandler(back)
    assert sorted(got) == EXPECTED
    assert back.seen == stats["read_retries"] >= 1


def test_s3_403_is_permanent(root: Path, s3_bucket, s3_proxy) -> None:
    url = s3_root(root, s3_bucket)
    s3_proxy.fail_next_gets(1, SHARD, status=403)
    with pytest.raises(ShardReadError, match=rf"shard {url}/{SHARD}: permanent error \(PermissionError"):
        run_epoch(url, stream(readahead=0, storage_options=via(s3_bucket, s3_proxy)))
    assert [f for m, path, _, f in s3_proxy.log if m == "GET" and path.endswith(SHARD)] == ["status"]
