"""Helpers for the converter fault tests: the CLI as a subprocess, and the checks made after every fault."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from convert_helpers import all_bytes

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]


def convert_args(src: str, out: str | Path, stage: Path, *extra: str) -> list[str]:
    """One episode per shard (4 shards of the small dataset, source order), one worker, staging in ``stage``."""
    return [
        "convert",
        src,
        str(out),
        "--order",
        "source",
        "--shard-size",
        "1",
        "--workers",
        "1",
        "--no-progress",
        "--staging-dir",
        str(stage),
        *extra,
    ]


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run(args: list[str], code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}\nstderr:{proc.stderr}"
    return proc


def reference(src: str, dest: Path) -> dict[str, bytes]:
    """Every file of a clean run (the API builds the same config the CLI options above give)."""
    convert(ConvertConfig(source=src, dest=str(dest), target_shard_bytes=1, order="source", progress=False))
    return all_bytes(dest)


def wait_until(cond: Callable[[], bool], what: str, proc: subprocess.Popen, deadline_s: float = 120.0) -> None:
    """Polls ``cond`` (not a timing assertion: the deadline only turns a hang into a failure)."""
    end = time.monotonic() + deadline_s
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"converter exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


def one_line(stderr: str) -> str:
    """The only line a failed or stopped run printed (and no traceback)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def assert_nothing_partial_visible(files: dict[str, bytes], expected: dict[str, bytes]) -> None:
    """Every file under a final name has the clean run's bytes; manifest.json only with all output present."""
    # temp files are named ".<name>.partial-<pid>": never a final name; _convert/ is the run's bookkeeping,
    # which a finished run removes (the clean run has none)
    final = {
        rel: data
        for rel, data in files.items()
        if not Path(rel).name.startswith(".") and not rel.startswith("_convert/")
    }
    for rel, data in final.items():
        assert rel in expected, f"{rel}: not a file of the clean run"
        assert data == expected[rel], f"{rel}: {len(data)} bytes differ from the clean run's {len(expected[rel])}"
    if "manifest.json" in final:
        missing = sorted(r for r in expected if r.startswith(("meta/", "shards/")) and r not in final)
        assert not missing, f"manifest.json is visible but {missing} are not"


def shards_done(files: dict[str, bytes]) -> int:
    return sum(rel.startswith("_convert/shards/") for rel in files)
