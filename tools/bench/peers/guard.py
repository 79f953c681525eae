"""Runs one benchmark in a child process under a wall-clock and a memory bound, and always returns a record.

Peer loaders can take minutes to start or grow their workers past what the host has (lerobot's streaming loader
buffers decoded frames). The bench must report that as the peer's result, not crash or hang: the child runs
``python -m lerobot_wds.tools.bench.peers.guard CONFIG_JSON OUT_JSON``; the parent samples the child's process tree
(RSS summed, as :class:`ProcessMonitor` does) and kills the whole tree when it passes ``max_rss_bytes`` or
``timeout_s``. A run that did not finish yields a record whose ``status`` says why ("timeout", "memory",
"killed" by a signal such as the kernel's OOM killer, "failed" with the child's last error line) and whose
metrics are absent, so reports print it as a row of its own.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from lerobot_wds.tools.bench.records import record_header
from lerobot_wds.tools.bench.scenarios import BenchConfig

POLL_S = 0.25


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _kill_tree(proc: psutil.Process) -> None:
    try:
        procs = [*proc.children(recursive=True), proc]
    except psutil.Error:
        procs = [proc]
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


def failure_record(
    config: BenchConfig, status: str, reason: str, elapsed_s: float, peak_rss: int
) -> dict[str, Any]:
    """A record of a run that produced no measurement: the scenario, the status and why."""
    return {
        **record_header(config),
        "status": status,
        "reason": reason,
        "wallclock_s": elapsed_s,
        "peak_rss_mb": peak_rss / 2**20,
        "rank": 0,
        "world_size": 1,
        "host": platform.node(),
        "cpus": os.cpu_count(),
    }


def run_guarded(config: BenchConfig, *, timeout_s: float, max_rss_bytes: int) -> dict[str, Any]:
    """Runs ``config`` in a child process; returns its record, or a failure record when it did not finish."""
    with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
        out = Path(tmp) / "record.json"
        err_path = Path(tmp) / "stderr.txt"
        cmd = [sys.executable, "-m", "lerobot_wds.tools.bench.peers.guard", json.dumps(asdict(config)), str(out)]
        with open(err_path, "wb") as err:
            child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            proc = psutil.Process(child.pid)
            t0 = time.monotonic()
            peak = 0
            status = ""
            while child.poll() is None:
                try:
                    peak = max(peak, _tree_rss(proc))
                except psutil.Error:
                    pass
                elapsed = time.monotonic() - t0
                if peak > max_rss_bytes:
                    status, reason = "memory", f"processes passed {max_rss_bytes / 2**30:.1f} GiB RSS, killed"
                elif elapsed > timeout_s:
                    status, reason = "timeout", f"no result after {timeout_s:.0f} s, killed"
                if status:
                    _kill_tree(proc)
                    child.wait()
                    return failure_record(config, status, reason, elapsed, peak)
                time.sleep(POLL_S)
        elapsed = time.monotonic() - t0
        if child.returncode == 0 and out.is_file():
            return json.loads(out.read_text())
        if child.returncode < 0:
            return failure_record(config, "killed", f"killed by signal {-child.returncode}", elapsed, peak)
        lines = err_path.read_text(errors="replace").strip().splitlines()
        reason = lines[-1][:300] if lines else f"exit status {child.returncode}"
        return failure_record(config, "failed", reason, elapsed, peak)


def main(argv: list[str] | None = None) -> int:
    """Child side: runs the config given as JSON and writes its record to the given path."""
    from lerobot_wds.tools.bench.runner import run_bench

    config_json, out = argv if argv is not None else sys.argv[1:]
    record = run_bench(BenchConfig(**json.loads(config_json)))
    Path(out).write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    from lerobot_wds.tools.process_exit import run_main

    run_main(main)
