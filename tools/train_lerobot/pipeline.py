"""lerobot's own ``lerobot-train`` (``lerobot.scripts.lerobot_train.train``) fed by a converted root.

lerobot's ``train`` builds everything itself: Accelerator, policy (``make_policy`` with the dataset's meta),
processors with the dataset's stats, optimizer and scheduler presets, logging, checkpoints and ``--resume``.
Two of its seams are replaced for the duration of the call, nothing else:

- ``make_train_eval_datasets`` (looked up in lerobot_train's namespace): returns a :class:`LeRobotWdsDataset`
  of ROOT built as lerobot's ``make_dataset`` builds its dataset (the policy's delta timestamps,
  ``--dataset.image_transforms``, ``--dataset.episodes``, ``return_uint8=True``, ``--tolerance_s``,
  ``--dataset.use_imagenet_stats``), with ``batch_size=--batch_size`` and ``seed=--seed``.
- ``accelerate.Accelerator`` (imported inside ``train``): a subclass whose ``prepare_data_loader`` turns the
  DataLoader lerobot built over that dataset into a :class:`RankLoader` (same workers, pinning, prefetch),
  which is no DataLoader, so accelerate neither dispatches from rank 0 nor makes every rank read everything:
  each rank reads its own episodes. Every other DataLoader goes through accelerate as before.

``--dataset.streaming=true`` is set so lerobot builds a plain DataLoader without its map-style sampler; a
resumed run starts the loader at the checkpoint's step (its epoch and offset), so batches continue exactly.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lerobot_wds.reader.dataset import LeRobotWdsDataset
from lerobot_wds.tools.train_lerobot.loader import LoaderOptions, RankLoader, SampleLog

log = logging.getLogger(__name__)


class TrainLerobotError(RuntimeError):
    """train-lerobot cannot run as asked (an unsupported option, or lerobot's train did not use our loader)."""


class _Run:
    """The state one ``train`` call shares between the two seams: ROOT, options, the dataset built."""

    def __init__(self, root: str, sample_log: str | None) -> None:
        self.root = root
        self.sample_log = sample_log
        self.dataset: LeRobotWdsDataset | None = None
        self.start_step = 0
        self.loaders: list[RankLoader] = []

    def make_datasets(self, cfg: Any) -> tuple[LeRobotWdsDataset, None]:
        """lerobot's ``make_train_eval_datasets(cfg)`` for ROOT (no held-out split)."""
        from lerobot.datasets.factory import resolve_delta_timestamps
        from lerobot.transforms import ImageTransforms
        from lerobot.utils.constants import IMAGENET_STATS

        if cfg.dataset.eval_split:
            raise TrainLerobotError(
                f"--dataset.eval_split={cfg.dataset.eval_split}: train-lerobot has no held-out split; convert the "
                "eval episodes separately, or pass --dataset.episodes for the training ones"
            )
        meta = LeRobotWdsDataset(self.root).meta
        transforms = cfg.dataset.image_transforms
        dataset = LeRobotWdsDataset(
            self.root,
            delta_timestamps=resolve_delta_timestamps(cfg.trainable_config, meta),
            episodes=cfg.dataset.episodes,
            image_transforms=ImageTransforms(transforms) if transforms.enable else None,
            return_uint8=True,
            tolerance_s=cfg.tolerance_s,
            seed=cfg.seed if cfg.seed is not None else 0,
            batch_size=cfg.batch_size,
        )
        dataset._meta = meta  # the metadata just read (and adjusted below) is this dataset's
        if cfg.dataset.use_imagenet_stats:
            import torch

            for key in meta.camera_keys:
                if key in meta.depth_keys:
                    continue
                for stat, values in IMAGENET_STATS.items():
                    meta.stats[key][stat] = torch.tensor(values, dtype=torch.float32)
        if cfg.resume and cfg.checkpoint_path is not None:
            from lerobot.common.train_utils import load_training_step
            from lerobot.utils.constants import TRAINING_STATE_DIR

            self.start_step = load_training_step(Path(cfg.checkpoint_path) / TRAINING_STATE_DIR)
        self.dataset = dataset
        return dataset, None

    def rank_loader(self, data_loader: Any, accelerator: Any, device_placement: Any) -> RankLoader | None:
        """Our loader for ``data_loader`` when it is the one lerobot built over our dataset, else None."""
        dataset = self.dataset
        if getattr(data_loader, "dataset", None) is not dataset or dataset is None:
            return None
        sample_log = SampleLog(self.sample_log, accelerator.process_index) if self.sample_log else None
        loader = RankLoader(
            dataset,
            LoaderOptions.of(data_loader),
            device=accelerator.device if device_placement is not False else None,
            start_step=self.start_step,
            sample_log=sample_log,
        )
        self.loaders.append(loader)
        if accelerator.is_main_process:
            log.info(
                "lerobot-wds: each of %d ranks reads its own episodes of %s: %d batches of %d per epoch per rank, "
                "%d workers, starting at step %d (epoch %d)",
                accelerator.num_processes,
                self.root,
                loader.per_epoch,
                dataset.batch_size,
                loader.options.num_workers,
                self.start_step,
                loader.epoch,
            )
        return loader

    def accelerator_class(self, base: Any) -> type:
        """A subclass of accelerate's ``Accelerator`` that hands our dataset's DataLoader to a RankLoader."""
        run = self

        class WdsAccelerator(base):
            def prepare_data_loader(self, data_loader: Any, device_placement: Any = None, **kwargs: Any) -> Any:
                ours = run.rank_loader(data_loader, self, device_placement)
                if ours is not None:
                    return ours
                return super().prepare_data_loader(data_loader, device_placement=device_placement, **kwargs)

        return WdsAccelerator


@contextlib.contextmanager
def seams(run: _Run) -> Iterator[None]:
    """Installs the two replacements (module docstring) and restores lerobot's and accelerate's own on exit."""
    import accelerate
    from lerobot.scripts import lerobot_train

    saved = (lerobot_train.make_train_eval_datasets, accelerate.Accelerator)
    lerobot_train.make_train_eval_datasets = run.make_datasets
    accelerate.Accelerator = run.accelerator_class(saved[1])
    try:
        yield
    finally:
        lerobot_train.make_train_eval_datasets, accelerate.Accelerator = saved


def lerobot_argv(root: str, args: list[str]) -> list[str]:
    """lerobot-train's arguments for ROOT: ``args`` plus streaming (and a repo id unless given)."""
    out = [a for a in args if not a.startswith("--dataset.streaming")]
    if not any(a.startswith("--dataset.repo_id") for a in out) and not any(
        a.startswith("--config_path") for a in out
    ):
        name = root.rstrip("/").rsplit("/", 1)[-1] or "root"
        out.append(f"--dataset.repo_id=lerobot_wds/{name}")
    out.append("--dataset.streaming=true")
    return out


def run_train(root: str, args: list[str], sample_log: str | None = None) -> None:
    """Runs lerobot's ``train`` with ``args`` (lerobot-train's flags) on ROOT through our loader.

    Raises:
        TrainLerobotError: lerobot's train finished without ever asking for our dataset's loader (a lerobot
            version whose loop differs from 0.6's), or an option train-lerobot cannot honour.
    """
    from lerobot.scripts import lerobot_train
    from lerobot.utils.import_utils import register_third_party_plugins

    run = _Run(root, sample_log)
    argv = sys.argv
    sys.argv = [argv[0], *lerobot_argv(root, args)]
    try:
        register_third_party_plugins()
        with seams(run):
            lerobot_train.train()
    finally:
        sys.argv = argv
    if run.dataset is not None and not run.loaders:
        raise TrainLerobotError(
            "lerobot's train never handed its DataLoader to accelerator.prepare; this lerobot version is not "
            "supported (train-lerobot supports lerobot 0.6.x)"
        )
