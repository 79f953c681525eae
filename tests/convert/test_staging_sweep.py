"""Sweeping staging dirs of killed runs: real owner processes (live, SIGKILLed, zombie), other hosts, no owner.

The end-to-end case (a converter killed with SIGKILL, then re-run) is in ``test_convert_cli``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from lerobot_wds.convert.staging import StagingArea
from lerobot_wds.convert.staging_sweep import OWNER_FILE, staging_prefix

# a process that creates a staging area, stages 1000 bytes in it, prints the dir and waits to be killed
_OWNER_SCRIPT = """
import sys
import time
from lerobot_wds.convert.staging import StagingArea
area = StagingArea(sys.argv[1], 2)
area.path("shard-000000").write_bytes(bytes(1000))
print(area.dir, flush=True)
sys.stdin.read()
"""


def _start_owner(base: Path) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT, str(base)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise AssertionError(f"owner process exited ({proc.wait()}) before creating its staging area")
    return proc, Path(line)


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir())


def test_dir_of_live_owner_is_kept_and_swept_once_it_is_killed(tmp_path, caplog):
    proc, theirs = _start_owner(tmp_path)
    try:
        assert (theirs / "shard-000000.staging").stat().st_size == 1000
        mine = StagingArea(str(tmp_path), 2)  # the owner sleeps: alive
        assert theirs.is_dir() and mine.swept.removed == ()
        again = StagingArea(str(tmp_path), 2)  # this process owns `mine`: alive
        assert mine.dir.is_dir() and again.swept.removed == ()
        size = _dir_bytes(theirs)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.convert.staging_sweep"):
        after = StagingArea(str(tmp_path), 2)
    assert not theirs.exists()
    assert after.swept.removed == (theirs,) and after.swept.freed_bytes == size
    assert f"removed staging dir {theirs} left by killed run (pid {proc.pid}" in caplog.text
    assert f"{size} bytes freed" in caplog.text
    assert mine.dir.is_dir() and again.dir.is_dir() and after.dir.is_dir()
    for area in (mine, again, after):
        area.cleanup()
    assert not list(tmp_path.iterdir())


def test_dir_of_killed_but_unreaped_owner_is_swept(tmp_path):
    proc, theirs = _start_owner(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    try:
        # not reaped yet: the pid still exists, as a zombie
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.005)  # SIGKILL is delivered asynchronously (polling, not a timed assertion)
        area = StagingArea(str(tmp_path), 2)
        assert area.swept.removed == (theirs,) and not theirs.exists()
    finally:
        proc.wait()
    area.cleanup()


def test_dir_whose_pid_was_reused_is_swept(tmp_path):
    # this pid is alive, but the owner record names a process started a minute before this one
    d = tmp_path / "lerobot-wds-staging-reused"
    d.mkdir()
    start = psutil.Process().create_time() - 60
    owner = {"host": _host(), "pid": os.getpid(), "start_time": start}
    (d / OWNER_FILE).write_text(json.dumps(owner))
    area = StagingArea(str(tmp_path), 2)
    assert area.swept.removed == (d,) and not d.exists()
    area.cleanup()


def test_dir_of_owner_on_another_host_is_kept(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)  # dead here, but the record says the owner runs on another host
    d = tmp_path / "lerobot-wds-staging-elsewhere"
    d.mkdir()
    (d / OWNER_FILE).write_text(json.dumps({"host": _host() + "-other", "pid": dead_pid, "start_time": 1.0}))
    area = StagingArea(str(tmp_path), 2)
    assert area.swept.removed == () and (d / OWNER_FILE).is_file()
    area.cleanup()


def test_dir_without_owner_record_is_kept_and_reported_once(tmp_path, caplog):
    d = tmp_path / "lerobot-wds-staging-unowned"
    d.mkdir()
    (d / "shard-000000.staging").write_bytes(b"x")
    bad = tmp_path / "lerobot-wds-staging-badrecord"
    bad.mkdir()
    (bad / OWNER_FILE).write_text('{"host": ')  # truncated: unknown owner, not a dead one
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.convert.staging_sweep"):
        areas = [StagingArea(str(tmp_path), 2) for _ in range(2)]
    assert d.is_dir() and bad.is_dir()
    assert areas[0].swept.kept_unowned == (bad, d) and areas[1].swept.kept_unowned == (bad, d)
    assert caplog.messages == [
        f"leaving 2 staging dir(s) in {tmp_path} alone: no owner record (left by an older "
        f"version, or being created right now): {bad.name}, {d.name}"
    ]
    for area in areas:
        area.cleanup()


_MKDTEMP_AND_EXIT = """
import sys, tempfile
from lerobot_wds.convert.staging_sweep import staging_prefix
print(tempfile.mkdtemp(prefix=staging_prefix(), dir=sys.argv[1]))
"""


def test_dir_without_owner_record_is_swept_when_its_name_names_a_dead_pid(tmp_path):
    # what a run killed between creating its staging dir and writing its owner record leaves
    proc = subprocess.run(
        [sys.executable, "-c", _MKDTEMP_AND_EXIT, str(tmp_path)], capture_output=True, text=True, check=True
    )
    dead = Path(proc.stdout.strip())
    (dead / "shard-000000.staging").write_bytes(bytes(100))
    live = Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=tmp_path))  # this process's: alive
    reused = tmp_path / f"{staging_prefix()}reused00"  # this pid, but changed before this process started
    reused.mkdir()
    before = psutil.Process().create_time() - 60
    os.utime(reused, (before, before))
    pid = dead.name.split("-")[-2]
    elsewhere = tmp_path / f"lerobot-wds-staging-{'0' * 8}-{pid}-abcdefgh"  # another host's tag
    elsewhere.mkdir()
    area = StagingArea(str(tmp_path), 2)
    assert sorted(area.swept.removed) == sorted([dead, reused]) and area.swept.freed_bytes == 100
    assert area.swept.kept_unowned == tuple(sorted([elsewhere, live])) and live.is_dir() and elsewhere.is_dir()
    area.cleanup()


def _host() -> str:
    return socket.gethostname()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_dir_of_another_user_is_kept(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    d = tmp_path / "lerobot-wds-staging-theirs"
    d.mkdir()
    (d / OWNER_FILE).write_text(json.dumps({"host": _host(), "pid": int(proc.stdout), "start_time": 1.0}))
    os.chown(d, 54321, 54321)  # dead owner on this host, but not this user's directory
    area = StagingArea(str(tmp_path), 2)
    assert area.swept.removed == () and (d / OWNER_FILE).is_file()
    area.cleanup()
