"""Resume state of a reader: what it is, how a DataLoader's progress maps onto it, how states merge (pure).

A state is ``{"version", "seed", "epoch", "world_size", "num_workers", "consumed": {worker id (str): samples
yielded}}``. Every worker of a rank yields the same quota per epoch and a DataLoader takes batches from its
workers round-robin, so the batches a training loop has seen say exactly how many samples each worker has
yielded; ``"rotation"`` (plain DataLoader states) names the worker the next batch comes from. The
epoch's plan depends on ranks x workers, so a state resumes only on the same topology (an
explicit error otherwise; resume at an epoch boundary to change it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lerobot_wds.reader.errors import ResumeError

STATE_VERSION = 1


def make_state(
    seed: int,
    epoch: int,
    consumed: Mapping[Any, int],
    world_size: int | None = None,
    num_workers: int | None = None,
) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "seed": seed,
        "epoch": epoch,
        "world_size": world_size,
        "num_workers": num_workers,
        "consumed": {str(w): int(n) for w, n in consumed.items()},
    }


def check_topology(state: Mapping[str, Any], world_size: int, num_workers: int) -> None:
    """Raises ResumeError when a mid-epoch state was saved by another ranks x workers topology."""
    saved = (state.get("world_size"), state.get("num_workers"))
    if saved[0] is None or not any(int(v) for v in state.get("consumed", {}).values()):
        return
    if saved != (world_size, num_workers):
        raise ResumeError(
            f"resume state of epoch {state.get('epoch')} was saved with {saved[0]} ranks x {saved[1]} workers, "
            f"this run has {world_size} x {num_workers}: the epoch's episode plan depends on it; resume with the "
            "same topology, or at the start of the next epoch (set_epoch) with a new one"
        )


def loader_consumed(batches_seen: int, batch_size: int, workers: int, quota: int) -> dict[int, int]:
    """Samples each worker yielded after a DataLoader handed out ``batches_seen`` batches of an epoch.

    Worker ``w`` produced batches ``w, w + N, ...`` (in-order round-robin over ``N`` workers).
    """
    consumed = {}
    for w in range(workers):
        batches = (batches_seen - w + workers - 1) // workers if batches_seen > w else 0
        consumed[w] = min(quota, batches * batch_size)
    return consumed


def merge_state(pending: Mapping[str, Any] | None, state: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Checks ``state`` against this reader (version, seed) and merges it into a pending resume of its epoch.

    Per-worker states (StatefulDataLoader hands one per worker) of the same epoch accumulate; another epoch
    replaces the pending one. Returns ``{"epoch", "consumed"}``.

    Raises:
        ResumeError: wrong version or a different seed.
    """
    if state.get("version") != STATE_VERSION:
        raise ResumeError(f"state version {state.get('version')!r}, expected {STATE_VERSION}")
    if state.get("seed") != seed:
        raise ResumeError(f"state was saved with seed {state.get('seed')}, this dataset has seed {seed}")
    epoch = int(state["epoch"])
    merged = dict(pending["consumed"]) if pending and pending["epoch"] == epoch else {}
    merged.update({str(k): int(v) for k, v in state["consumed"].items()})
    return {
        "epoch": epoch,
        "consumed": merged,
        "world_size": state.get("world_size"),
        "num_workers": state.get("num_workers"),
        "rotation": state.get("rotation", 0),
    }
