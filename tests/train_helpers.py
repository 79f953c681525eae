"""Running ``lerobot-wds train`` under torchrun in tests: a job killed with ``kill -9`` once a checkpoint is
complete, and the per-rank sample logs it wrote."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest


def torchrun(nproc: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    return {**env, "OMP_NUM_THREADS": "1"}


def kill9_after_checkpoint(cmd: list[str], checkpoint: Path, final: Path, timeout_s: float = 300) -> None:
    """Runs ``cmd`` until ``checkpoint`` exists, then kills the whole job with ``kill -9`` at once: the launcher,
    the ranks (torchrun starts them in sessions of their own, so a process group is not enough) and their
    DataLoader workers. Fails when the job ended first or already wrote ``final``."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=clean_env(), start_new_session=True
    )
    deadline = time.monotonic() + timeout_s
    while not checkpoint.exists():
        assert proc.poll() is None, f"run ended before {checkpoint.name}: {proc.stderr.read()[-3000:]!r}"
        assert time.monotonic() < deadline, f"no {checkpoint.name} within {timeout_s} s"
        time.sleep(0.01)
    job = psutil.Process(proc.pid)
    victims = [job, *job.children(recursive=True)]
    for p in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    psutil.wait_procs(victims, timeout=60)
    if final.exists():
        pytest.fail(f"the run wrote {final.name} before kill -9 reached it; nothing was interrupted")


def sample_logs(out: Path, ranks: int) -> list[list[dict]]:
    """Each rank's ``--log-samples`` lines; fails when a rank wrote none (a rank that never started)."""
    files = sorted(out.glob("samples-*.jsonl"), key=lambda f: int(f.stem.split("-")[1]))
    assert [f.name for f in files] == [f"samples-{r}.jsonl" for r in range(ranks)], "a rank wrote no sample log"
    return [[json.loads(ln) for ln in f.read_text().splitlines()] for f in files]
