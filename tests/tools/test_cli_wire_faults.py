"""Subcommands reading a bucket through connection resets: the verdict, and no traceback in the output.

aiohttp (under s3fs) leaves an "exception was never retrieved" report with a traceback behind when a
connection is reset mid-request, even after the request was retried and succeeded. The console script
filters those out for every subcommand (``tools/async_logs.py``); here ``verify`` and ``inspect`` read shards
from moto behind the fault proxy, which resets each GET of one shard mid-body more often than s3fs retries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_wds.testing.shards import RootSpec, make_root

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]
SPEC = RootSpec(lengths=(5, 6, 4, 7), episodes_per_shard=2, cameras=("observation.images.c",))
# the shard each command reads: verify reads every shard whole, inspect the first episode's JSON of shard 0
SHARDS = {"verify": "shards/shard-000001.tar", "inspect": "shards/shard-000000.tar"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli_wire_root")
    make_root(path, SPEC)
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    out = proc.stderr + proc.stdout
    assert "Traceback" not in out and "never retrieved" not in out, proc.stderr[-4000:]


@pytest.mark.parametrize("command", ["verify", "inspect"])
def test_reads_through_resets_print_the_verdict_and_no_traceback(root, s3_bucket, s3_proxy, command) -> None:
    import s3fs

    s3_bucket.fs.put(str(root), s3_bucket.url("root"), recursive=True)
    resets = s3fs.S3FileSystem.retries + 1  # past s3fs's own retries: ours retry the shard too
    s3_proxy.reset_next_gets(resets, SHARDS[command], after_bytes=100)
    options = json.dumps({**s3_bucket.via(s3_proxy), "skip_instance_cache": False})
    proc = _run([command, s3_bucket.url("root"), "--json", "--dest-options", options])
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert s3_proxy.faults("reset") == resets
    report = json.loads(proc.stdout)
    counts = (report["shards"], report["episodes"], report["frames"])
    assert counts == (2, len(SPEC.lengths), sum(SPEC.lengths)), report
    if command == "verify":
        assert report["ok"] is True and report["findings"] == [], report
    else:
        assert report["cameras_from_episode"] == 0 and report["cameras"]["observation.images.c"]["codec"], report


def test_inspect_past_its_retries_is_one_line_naming_the_shard(root, http_dir_server) -> None:
    server = http_dir_server(root)
    server.inject_fault(f"/{SHARDS['inspect']}", fail_requests=100)  # 503 to every GET of the first shard
    proc = _run(["inspect", server.url])
    _no_traceback(proc)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        f"lerobot-wds inspect: error: {server.url}/{SHARDS['inspect']}: still failing after 4 attempts ("
    ), lines[0]
    assert len(server.stats().for_path(f"/{SHARDS['inspect']}")) == 4  # the reader's policy: 1 + 3 retries
