"""Atomic training checkpoints: written under a temporary name, complete only once renamed.

Layout of ``DIR/step-00000020/``: ``rank-<r>.pt`` per rank (its dataset stream state and RNG states) and, from
rank 0, ``train.pt`` (model, optimizer, scheduler, step, epoch, batches into the epoch). Every rank writes its
part into ``DIR/.tmp-step-00000020/``; after a barrier rank 0 renames the folder: a checkpoint killed half
way is never taken for a complete one, and the newest ``keep`` complete checkpoints are kept.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lerobot_wds.tools.errors import CheckpointError

_COMPLETE = re.compile(r"^step-(\d{8})$")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def complete_checkpoints(root: Path) -> list[Path]:
    """The complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _COMPLETE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_part(
    root: Path, step: int, rank: int, rank_state: dict[str, Any], train_state: dict[str, Any] | None
) -> Path:
    """Writes this rank's part of checkpoint ``step`` into its temporary folder; returns that folder."""
    tmp = root / f".tmp-step-{step:08d}"
    tmp.mkdir(parents=True, exist_ok=True)
    _save(rank_state, tmp / f"rank-{rank}.pt")
    if train_state is not None:
        _save(train_state, tmp / "train.pt")
    return tmp


def publish(root: Path, step: int, world_size: int, keep: int) -> Path:
    """Rank 0, after every rank wrote its part: renames the folder into place and prunes old checkpoints."""
    tmp, final = root / f".tmp-step-{step:08d}", step_dir(root, step)
    missing = [f"rank-{r}.pt" for r in range(world_size) if not (tmp / f"rank-{r}.pt").exists()]
    if missing or not (tmp / "train.pt").exists():
        raise CheckpointError(f"checkpoint {tmp}: parts missing {missing or ['train.pt']}")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in complete_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    """Returns (train state, this rank's state or None when the checkpoint had fewer ranks, every rank's
    dataset state) of a complete checkpoint."""
    train = torch.load(path / "train.pt", map_location="cpu", weights_only=False)
    ranks = sorted(path.glob("rank-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    parts = {int(p.stem.split("-")[1]): torch.load(p, map_location="cpu", weights_only=False) for p in ranks}
    return train, parts.get(rank), [part["dataset"] for part in parts.values()]
