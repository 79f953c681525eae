"""Converter faults at an S3 destination (moto behind the fault proxy): SIGTERM mid-upload, restarts.

The same checks as ``test_convert_faults``: after each fault nothing partial is visible as complete, and the
run (riding through) or a re-run gives every file of a clean run byte for byte. Resume reads what is at the
destination: a server that comes back without the objects it had gets them again from the re-run.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from convert_helpers import s3_all_bytes
from fault_helpers import (
    assert_nothing_partial_visible,
    convert_args,
    one_line,
    reference,
    run,
    shards_done,
    start,
    wait_until,
)

from lerobot_wds.testing.s3 import S3FaultProxy, s3_options

SIGTERM_EXIT = 128 + signal.SIGTERM


TEN = ("--upload-attempts", "10")  # retries enough to ride through an endpoint restart


def s3_args(src, dest: str, stage, options: dict, backoff: str, *extra: str) -> list[str]:
    """``convert_args`` to an S3 destination with these storage options and retry backoff."""
    return convert_args(
        str(src), dest, stage, "--dest-options", json.dumps(options), "--retry-backoff", backoff, *extra
    )


def test_sigterm_during_s3_upload_finishes_that_upload_then_stops(
    small_lerobot_dataset, s3_bucket, s3_proxy, tmp_path
):
    expected = reference(str(small_lerobot_dataset.root), tmp_path / "ref")
    stage = tmp_path / "stage"
    args = s3_args(small_lerobot_dataset.root, s3_bucket.url("out"), stage, s3_bucket.via(s3_proxy), "0.01")
    holding = s3_proxy.hold_put("/out/shards/shard-000001.tar")
    proc = start(args)
    wait_until(holding.is_set, "the upload of shard 1 to be half sent", proc)
    proc.send_signal(signal.SIGTERM)
    s3_proxy.state.release.set()  # the stopping run waits for the upload in flight; let it complete
    code = proc.wait(timeout=60)
    prefix = f"{s3_bucket.name}/out"
    files = s3_all_bytes(s3_bucket.fs, prefix)
    n = shards_done(files)
    assert code == SIGTERM_EXIT and n in (2, 3)  # shards 0 and 1 (the one in flight), maybe 2 if queued by then
    assert files["shards/shard-000001.tar"] == expected["shards/shard-000001.tar"]
    assert "_convert/shards/shard-000001.json" in files and "manifest.json" not in files
    assert one_line(proc.stderr.read()).endswith(
        f"interrupted by SIGTERM, {n} of 4 shards done; rerun the same command to resume"
    )
    assert list(stage.iterdir()) == []
    assert_nothing_partial_visible(files, expected)
    assert f"resumed {n} shards" in run(args).stderr
    assert s3_all_bytes(s3_bucket.fs, prefix) == expected


# -- S3 endpoint restarts -------------------------------------------------------------------------------------


def test_s3_endpoint_restarted_mid_upload_is_ridden_through(small_lerobot_dataset, s3_bucket, s3_proxy, tmp_path):
    """The endpoint dies while shard 1's PUT is half sent and comes back on the same port (storage kept)."""
    expected = reference(str(small_lerobot_dataset.root), tmp_path / "ref")
    options = s3_bucket.via(s3_proxy)
    args = s3_args(small_lerobot_dataset.root, s3_bucket.url("out"), tmp_path / "stage", options, "0.05", *TEN)
    holding = s3_proxy.hold_put("/out/shards/shard-000001.tar")
    proc = start(args)
    wait_until(holding.is_set, "the upload of shard 1 to be half sent", proc)
    s3_proxy.stop()  # drops the held PUT's connection and refuses new ones
    s3_proxy.start()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    # retried (by s3fs itself or by the converter: s3fs retries a dropped connection before we see it)
    assert s3_proxy.state.puts.count(f"/{s3_bucket.name}/out/shards/shard-000001.tar") >= 2
    assert s3_all_bytes(s3_bucket.fs, f"{s3_bucket.name}/out") == expected


def test_s3_endpoint_down_past_the_retries_fails_clearly_and_rerun_resumes(
    small_lerobot_dataset, s3_bucket, s3_proxy, tmp_path
):
    expected = reference(str(small_lerobot_dataset.root), tmp_path / "ref")
    stage = tmp_path / "stage"
    args = s3_args(
        small_lerobot_dataset.root,
        s3_bucket.url("out"),
        stage,
        s3_bucket.via(s3_proxy),
        "0.01",
        "--upload-attempts",
        "2",
    )
    holding = s3_proxy.hold_put("/out/shards/shard-000001.tar")
    proc = start(args)
    wait_until(holding.is_set, "the upload of shard 1 to be half sent", proc)
    s3_proxy.stop()
    code = proc.wait(timeout=120)
    line = one_line(proc.stderr.read())
    assert code == 1 and re.match(
        rf"lerobot-wds convert: error: upload s3://{s3_bucket.name}/out/shards/shard-000001\.tar: still failing "
        r"after 2 attempts \(",
        line,
    ), line
    assert list(stage.iterdir()) == []
    s3_proxy.start()
    prefix = f"{s3_bucket.name}/out"
    files = s3_all_bytes(s3_bucket.fs, prefix)
    assert shards_done(files) == 1 and "manifest.json" not in files
    assert_nothing_partial_visible(files, expected)
    assert "resumed 1 shards" in run(args).stderr
    assert s3_all_bytes(s3_bucket.fs, prefix) == expected


class MotoProcess:
    """moto's S3 server as a process of its own on a fixed port: killing it loses every bucket and object."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, bucket: str) -> None:
        """Starts the server (again, on the same port) and creates ``bucket``."""
        import s3fs

        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"moto server on port {self.port} did not start (exit {self.proc.poll()})")
            time.sleep(0.02)
        fs = s3fs.S3FileSystem(**s3_options(self.endpoint))
        fs.call_s3("create_bucket", Bucket=bucket)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def moto_process() -> Iterator[MotoProcess]:
    server = MotoProcess()
    yield server
    server.kill()


def test_s3_server_killed_and_restarted_empty_mid_upload(small_lerobot_dataset, moto_process, tmp_path):
    """kill -9 of the S3 server while shard 1's PUT is in flight; it restarts empty (moto keeps no state).

    The converter's retries ride through the restart, but the objects written before the kill are gone:
    finalize finds shard 0 missing and refuses to write the manifest (exit 1, one line). Resume reads what is
    at the destination, so the re-run uploads the lost meta/ and shard 0 again and keeps shards 1-3.
    """
    import s3fs

    expected = reference(str(small_lerobot_dataset.root), tmp_path / "ref")
    moto_process.start("bucket")
    proxy = S3FaultProxy(moto_process.endpoint)
    try:
        options = s3_options(proxy.endpoint)
        args = s3_args(small_lerobot_dataset.root, "s3://bucket/out", tmp_path / "stage", options, "0.05", *TEN)
        holding = proxy.hold_put("/bucket/out/shards/shard-000001.tar")
        proc = start(args)
        wait_until(holding.is_set, "the upload of shard 1 to be half sent", proc)
        moto_process.kill()
        # until the server is back, the proxy answers PUTs with 503 like a load balancer without a backend (a
        # retry must not reach the restarted server before its bucket exists); the held PUT was already let
        # in, so it goes on to the dead server and fails
        proxy.fail_next_puts(10**6)
        proxy.state.release.set()
        wait_until(lambda: proxy.failed >= 1, "the converter to retry the upload", proc)
        moto_process.start("bucket")
        proxy.fail_next_puts(0)
        code = proc.wait(timeout=120)
        line = one_line(proc.stderr.read())
        assert code == 1 and line == (
            "lerobot-wds convert: error: s3://bucket/out/shards/shard-000000.tar: expected "
            f"{len(expected['shards/shard-000000.tar'])} bytes, found missing"
        ), line
        fs = s3fs.S3FileSystem(**s3_options(moto_process.endpoint))
        files = s3_all_bytes(fs, "bucket/out")
        shards = sorted(r for r in files if r.startswith("shards/"))
        assert shards == [f"shards/shard-00000{i}.tar" for i in (1, 2, 3)]
        assert_nothing_partial_visible(files, expected)
        assert "manifest.json" not in files
        assert "resumed 3 shards" in run(args).stderr
        assert s3_all_bytes(fs, "bucket/out") == expected
    finally:
        proxy.stop()
