"""Training-loop metrics: step and data-wait times, throughput per rank and per node, loader cache counters.

Each rank times its steps; every ``log_every`` steps the interval's numbers are all-reduced and rank 0 prints
one JSON line: the benchmark's metrics, so a training log shows when the loader starves the accelerator.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


class StepMetrics:
    """Collects one logging interval; :meth:`emit` reduces it over ranks and prints it from rank 0."""

    def __init__(self, frames_per_sample: int, rank: int, world_size: int) -> None:
        self.frames_per_sample, self.rank, self.world = frames_per_sample, rank, world_size
        self.local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        self.first_batch_s: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.steps: list[float] = []
        self.waits: list[float] = []
        self.losses: list[float] = []
        self.samples = 0
        self.started = time.perf_counter()

    def record(self, step_s: float, wait_s: float, samples: int, loss: float | None) -> None:
        self.steps.append(step_s)
        self.waits.append(wait_s)
        self.samples += samples
        if loss is not None:
            self.losses.append(loss)

    def emit(self, step: int, epoch: int, cache: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """All-reduces the interval (a collective: every rank calls it) and prints it on rank 0."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        loss = float(np.mean(self.losses)) if self.losses else float("nan")
        local = torch.tensor(
            [self.samples / elapsed, loss if self.losses else 0.0, sum(self.waits), sum(self.steps)],
            dtype=torch.float64,
        )
        if self.world > 1 and dist.is_initialized():
            dist.all_reduce(local)
        sps_total, loss_sum, wait_sum, step_sum = local.tolist()
        line = None
        if self.rank == 0:
            nodes = max(1, self.world // max(1, self.local_world))
            line = {
                "step": step,
                "epoch": epoch,
                **({"loss": loss_sum / self.world} if self.losses else {}),
                "samples_per_s_rank": sps_total / self.world,
                "samples_per_s_node": sps_total / nodes,
                "frames_per_s_rank": sps_total / self.world * self.frames_per_sample,
                "frames_per_s_node": sps_total / nodes * self.frames_per_sample,
                "step_time_p50_s": float(np.percentile(self.steps, 50)),
                "step_time_p95_s": float(np.percentile(self.steps, 95)),
                "first_batch_s": self.first_batch_s,
                "data_wait_fraction": wait_sum / step_sum if step_sum else 0.0,
                "loader_cache": dict(cache) if cache else None,
            }
            print(json.dumps(line), file=sys.stdout, flush=True)
        self._reset()
        return line


def cache_summary(per_worker: Mapping[int, Mapping[str, Any]]) -> dict[str, Any] | None:
    """Sums the frame-pool counters the workers reported (hits, misses, evictions, decoded frames)."""
    frames = [s["frames"] for s in per_worker.values() if isinstance(s.get("frames"), Mapping)]
    if not frames:
        return None
    out: dict[str, float] = {k: sum(int(f.get(k, 0)) for f in frames) for k in ("hits", "misses", "evictions")}
    out["hit_rate"] = out["hits"] / (out["hits"] + out["misses"]) if out["hits"] + out["misses"] else 0.0
    out["decoded_frames"] = sum(int(s.get("decoded_frames", 0)) for s in per_worker.values())
    return out
