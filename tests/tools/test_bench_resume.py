"""``lerobot-wds bench-resume`` on a small root: one JSON line of real measurements, bad options exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli", "bench-resume"]


def test_bench_resume_prints_state_sizes_and_first_batch_times(wds_root: Path) -> None:
    args = ["--from", "2,1", "--to", "1,0", "--batches", "2", "--batch-size", "3", "--rounds", "1"]
    proc = subprocess.run([*CLI, str(wds_root), *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (record["episodes"], record["frames"]) == (8, 78)
    assert record["from"] == [2, 1] and record["to"] == [1, 0] and record["batches_before_checkpoint"] == 2
    assert len(record["state_bytes_per_rank"]) == 2 and all(b > 500 for b in record["state_bytes_per_rank"])
    assert record["first_batch_s_elastic_median"] > 0 and record["first_batch_s_exact_median"] > 0
    assert record["state_bytes_after_elastic_resume"] > 500


def test_bench_resume_bad_shape_exits_2(wds_root: Path) -> None:
    proc = subprocess.run([*CLI, str(wds_root), "--from", "2x2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "expected RANKS,WORKERS such as 2,2; got '2x2'" in proc.stderr
    assert "Traceback" not in proc.stderr
