"""Entry point run by ``torchrun`` in the reader's multi-process tests: one rank reading with 2 DataLoader workers.

Writes ``<out>/rank<r>.json`` with the (episode, frame) ids it received per epoch and its batch count.
:func:`run_ranks` launches it (2 ranks, gloo) and returns what every rank wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from lerobot_wds import LeRobotWdsDataset


def main(root: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    ds = LeRobotWdsDataset(root, seed=11, delta_timestamps={"observation.state": [-0.1, 0.0]})
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    result: dict[str, object] = {"rank": rank, "world": dist.get_world_size(), "epochs": []}
    for epoch in range(2):
        ds.set_epoch(epoch)
        ids: list[list[int]] = []
        batches = 0
        for batch in loader:
            batches += 1
            ids += [[int(e), int(f)] for e, f in zip(batch["episode_index"], batch["frame_index"], strict=True)]
            # a collective per batch: would hang if ranks had different batch counts
            dist.all_reduce(torch.ones(1))
        result["epochs"].append({"ids": ids, "batches": batches})  # type: ignore[union-attr]
    result["samples_per_rank"] = ds.samples_per_rank(num_workers=2)
    Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def run_ranks(root: Path, out: Path, ranks: int = 2) -> list[dict[str, Any]]:
    """Runs this script under ``torchrun --standalone`` with ``ranks`` processes; returns each rank's result."""
    here = Path(__file__).parent
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(ranks),
        str(Path(__file__)),
        str(root),
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=here)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(ranks)]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
