"""The dataset states beside lerobot's checkpoints, so ``train-lerobot --resume`` can continue on another shape.

lerobot's checkpoint (``OUTPUT/checkpoints/<step>/``) holds the step, the number of processes and the batch
size, not where each rank's readers were. When the loader hands out the batch of a step lerobot will save a
checkpoint after, every rank writes its dataset state (``LeRobotWdsDataset.loader_state_dict``) to
``OUTPUT/lerobot_wds_state/step-<step>/rank-<r>.pt`` (under a temporary name, renamed once complete), with the
run's shape. A resumed run reads every rank's state of its checkpoint's step: on the same ranks x workers the
epoch continues exactly as the uninterrupted run, on another shape the rest of the epoch is re-planned over the
new readers, every sample exactly once (:mod:`lerobot_wds.reader.planning.elastic`). Only the newest ``keep``
steps are kept.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lerobot_wds.tools.train_lerobot.errors import TrainLerobotError

_STEP = re.compile(r"^step-(\d{9})$")
KEEP = 3


@dataclass(frozen=True)
class Shape:
    """What a run's batches depend on besides the dataset's seed: ranks, workers per rank, batch size."""

    world_size: int
    num_workers: int
    batch_size: int


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:09d}"


def write(root: Path, step: int, rank: int, shape: Shape, state: dict[str, Any], keep: int = KEEP) -> None:
    """Writes rank ``rank``'s dataset state for ``step`` atomically; rank 0 prunes steps older than ``keep``."""
    folder = step_dir(root, step)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank-{rank}.pt"
    tmp = path.with_name(path.name + f".{os.getpid()}.part")
    torch.save({"shape": shape.__dict__, "dataset": state}, tmp)
    os.replace(tmp, path)
    if rank == 0:
        steps = sorted(int(m.group(1)) for p in root.iterdir() if (m := _STEP.match(p.name)))
        for old in steps[:-keep]:
            shutil.rmtree(step_dir(root, old), ignore_errors=True)


def load(root: Path, step: int) -> tuple[Shape, list[dict[str, Any]]] | None:
    """The shape and every rank's dataset state saved for ``step``; None when none was saved.

    Raises:
        TrainLerobotError: some ranks' states are missing (the run was killed while writing them).
    """
    folder = step_dir(root, step)
    parts = sorted(folder.glob("rank-*.pt"), key=lambda p: int(p.stem.split("-")[1])) if folder.is_dir() else []
    if not parts:
        return None
    loaded = [torch.load(p, map_location="cpu", weights_only=False) for p in parts]
    shape = Shape(**loaded[0]["shape"])
    ranks = sorted(int(p.stem.split("-")[1]) for p in parts)
    if ranks != list(range(shape.world_size)):
        raise TrainLerobotError(
            f"{folder}: dataset states of ranks {ranks}, the run had {shape.world_size} ranks; "
            "resume from an earlier checkpoint"
        )
    return shape, [part["dataset"] for part in loaded]


def differences(saved: Shape, now: Shape) -> list[str]:
    """What differs between the checkpoint's shape and this run's, in words."""
    names = {"world_size": "ranks", "num_workers": "workers per rank", "batch_size": "batch size"}
    return [
        f"{names[k]} {getattr(saved, k)} -> {getattr(now, k)}"
        for k in names
        if getattr(saved, k) != getattr(now, k)
    ]
