"""What ``lerobot-train``'s loop iterates in ``train-lerobot``: this rank's batches, built by the dataset.

lerobot's loop calls ``iter()`` on its loader once per epoch (``lerobot.utils.utils.cycle``) and takes one
batch per step. :class:`RankLoader` is not a ``torch.utils.data.DataLoader``, so ``accelerator.prepare``
returns it untouched (accelerate's ``_prepare_one`` wraps only DataLoader instances): no rank-0 dispatch, no
every-rank-reads-all. Each iteration sets the dataset's epoch, optionally starts mid-epoch (resume), and
yields ``DataLoader(dataset, batch_size=None)``'s batches (built in place by the dataset) moved to the
device. A resumed run continues from every rank's dataset state saved beside lerobot's checkpoint
(:mod:`sidecar`): exactly as the uninterrupted run on the same shape, every remaining sample exactly once on
another. Without saved states it starts at the step's position (every rank yields the same number of batches
per epoch, :func:`batches_per_epoch`), exact on the same shape only.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from lerobot_wds.reader.dataset import LeRobotWdsDataset
from lerobot_wds.tools.train_lerobot import sidecar
from lerobot_wds.tools.train_lerobot.errors import TrainLerobotError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoaderOptions:
    """The worker options of the DataLoader lerobot built (copied so its flags mean the same here)."""

    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = None
    multiprocessing_context: Any = None

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")

    @classmethod
    def of(cls, loader: DataLoader) -> LoaderOptions:
        workers = loader.num_workers
        return cls(
            num_workers=workers,
            pin_memory=loader.pin_memory,
            persistent_workers=loader.persistent_workers and workers > 0,
            prefetch_factor=loader.prefetch_factor if workers > 0 else None,
            multiprocessing_context=loader.multiprocessing_context if workers > 0 else None,
        )


def batches_per_epoch(dataset: LeRobotWdsDataset, num_workers: int) -> int:
    """Batches this rank yields per epoch: each of ``max(1, num_workers)`` readers yields ``ceil(quota / bs)``.

    Equal on every rank (every reader has the same quota), so ranks step in lockstep.
    """
    if dataset.batch_size is None:
        raise ValueError("the dataset must build batches (LeRobotWdsDataset(..., batch_size=N))")
    workers = max(1, num_workers)
    quota = dataset.samples_per_rank(num_workers=num_workers) // workers
    return workers * math.ceil(quota / dataset.batch_size)


def resume_position(step: int, per_epoch: int) -> tuple[int, int]:
    """The (epoch, batches already taken in it) at which training step ``step`` (0-based) draws its batch."""
    if step < 0 or per_epoch < 1:
        raise ValueError(f"step must be >= 0 and per_epoch >= 1, got {step}, {per_epoch}")
    return divmod(step, per_epoch)


@dataclass(frozen=True)
class StateSaving:
    """Where and when this rank saves its dataset state beside lerobot's checkpoints (:mod:`sidecar`)."""

    root: Path
    rank: int
    shape: sidecar.Shape
    due: Callable[[int], bool]  # whether lerobot saves a checkpoint after this (1-based) step


class BatchSampleLog:
    """Appends ``{"rank", "step", "epoch", "samples": [[episode_index, frame_index], ...]}`` per batch (JSONL)."""

    def __init__(self, path: str | Path, rank: int) -> None:
        self.path = Path(str(path).replace("{rank}", str(rank)))
        self.rank = rank
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, epoch: int, batch: dict[str, Any]) -> None:
        pairs = zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True)
        record = {"rank": self.rank, "step": step, "epoch": epoch, "samples": [[int(e), int(f)] for e, f in pairs]}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class RankLoader:
    """This rank's batches for lerobot's training loop; one ``iter()`` is one epoch (see the module docstring).

    Args:
        dataset: the dataset, built with ``batch_size`` (the rank is detected or given to it).
        options: the DataLoader worker options.
        device: where batches go (``non_blocking`` when pinned); None keeps them where they are.
        start_step: the training step the first batch is for (a resumed run's checkpoint step).
        sample_log: optional per-batch record of sample identities.
    """

    def __init__(
        self,
        dataset: LeRobotWdsDataset,
        options: LoaderOptions,
        *,
        device: torch.device | None = None,
        start_step: int = 0,
        sample_log: BatchSampleLog | None = None,
        states: StateSaving | None = None,
    ) -> None:
        self.dataset = dataset
        self.options = options
        self.device = device
        self.per_epoch = batches_per_epoch(dataset, options.num_workers)
        self.epoch, self._skip = resume_position(start_step, self.per_epoch)
        self.in_epoch = self._skip  # batches of the epoch (of its re-planned rest, after an elastic resume)
        self.step = start_step
        self.sample_log = sample_log
        self.states = states
        self.resumed: str | None = None  # how a resumed run goes on, in words
        if start_step and states is not None:
            self._resume_from_states(states, start_step)
        extra: dict[str, Any] = {}
        if options.num_workers > 0:
            extra = {
                "prefetch_factor": options.prefetch_factor,
                "persistent_workers": options.persistent_workers,
                "multiprocessing_context": options.multiprocessing_context,
            }
        self.loader = DataLoader(
            dataset, batch_size=None, num_workers=options.num_workers, pin_memory=options.pin_memory, **extra
        )

    def __len__(self) -> int:
        return self.per_epoch

    def _resume_from_states(self, states: StateSaving, step: int) -> None:
        """Continues from every rank's dataset state saved for ``step``, exactly or re-planned (:mod:`sidecar`).

        Raises:
            TrainLerobotError: the checkpoint was written with another batch size, or ranks' states are missing.
        """
        found = sidecar.load(states.root, step)
        if found is None:  # no states beside this checkpoint: the step's position on this shape
            log.warning(
                "lerobot-wds: no dataset state was saved for the checkpoint of step %d; resuming at that step's "
                "position, the same samples as the interrupted run only with its ranks, workers and batch size",
                step,
            )
            return
        saved, parts = found
        changed = sidecar.differences(saved, states.shape)
        if saved.batch_size != states.shape.batch_size:
            raise TrainLerobotError(
                f"the checkpoint of step {step} was written with batch size {saved.batch_size}, this run has "
                f"{states.shape.batch_size}: resume with --batch_size={saved.batch_size}"
            )
        for part in parts:
            self.dataset.load_state_dict(part)
        self.epoch, self._skip = self.dataset.epoch, 0
        elastic = self.dataset.resumes_elastically(self.options.num_workers)
        mine = parts[states.rank] if not elastic else {}
        self.in_epoch = int(mine.get("batches", 0))
        self.resumed = (
            f"the rest of epoch {self.epoch} re-planned over the new readers ({', '.join(changed)}): every sample "
            "exactly once"
            if elastic
            else f"epoch {self.epoch} continues exactly as the uninterrupted run"
        )

    def _save_state(self, step: int, batch_size: int) -> None:
        """Saves this rank's dataset state for lerobot's checkpoint of ``step``; a failure to write it is said, not
        raised (lerobot's own checkpoint then meets the same disk, and a resume from a checkpoint without states
        falls back to its step's position)."""
        assert self.states is not None
        state = self.dataset.loader_state_dict(self.in_epoch, batch_size, self.options.num_workers)
        try:
            sidecar.write(self.states.root, step, self.states.rank, self.states.shape, state)
        except OSError as e:
            log.warning("lerobot-wds: could not save the dataset state for the checkpoint of step %d: %s", step, e)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self.epoch
        self.dataset.set_epoch(epoch)
        batch_size = self.dataset.batch_size or 1
        if self._skip:
            state = self.dataset.loader_state_dict(self._skip, batch_size, self.options.num_workers)
            self.dataset.load_state_dict(state)
            self._skip = 0
        for batch in self.loader:
            self.in_epoch += 1
            if self.states is not None and self.states.due(self.step + 1):  # lerobot saves after this step
                self._save_state(self.step + 1, batch_size)
            if self.sample_log is not None:
                self.sample_log.write(self.step, epoch, batch)
            self.step += 1
            yield self._to_device(batch)
        self.epoch, self.in_epoch = epoch + 1, 0

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.device is None:
            return batch
        blocking = not self.options.pin_memory
        return {
            k: v.to(self.device, non_blocking=not blocking) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()
        }
