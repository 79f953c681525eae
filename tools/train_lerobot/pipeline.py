"""lerobot's own ``lerobot-train`` (``lerobot.scripts.lerobot_train.train``) fed by a converted root.

lerobot 0.6's ``train(cfg, accelerator)`` builds everything itself: policy (``make_policy`` with the dataset's
meta), processors with the dataset's stats, optimizer and scheduler presets, logging, checkpoints and
``--resume``. Two things reach it from here; neither lerobot's nor accelerate's modules or classes are changed:

- the accelerator, through ``train``'s own ``accelerator`` argument: a :class:`Accelerator` subclass
  (:mod:`seams`), built with the options lerobot gives its own, whose ``prepare_data_loader`` turns the DataLoader
  lerobot built over our dataset into a :class:`RankLoader` (same workers, pinning, prefetch). That is no
  DataLoader, so accelerate neither dispatches from rank 0 nor makes every rank read everything.
- the dataset: 0.6's ``train`` takes no dataset argument and calls ``make_train_eval_datasets(cfg)`` by name,
  so the call runs a private copy of ``train``'s function whose global namespace maps that one name to
  :meth:`_Run.make_datasets` (a :class:`LeRobotWdsDataset` of ROOT built as lerobot's ``make_dataset`` builds
  its dataset: the policy's delta timestamps, ``--dataset.image_transforms``, ``--dataset.episodes``,
  ``return_uint8=True``, ``--tolerance_s``, ``--dataset.use_imagenet_stats``, ``batch_size=--batch_size``,
  ``seed=--seed``). lerobot's module keeps its own function.

``--dataset.streaming=true`` is set so lerobot builds a plain DataLoader without its map-style sampler. Beside
each checkpoint lerobot saves, every rank saves its dataset state (:mod:`sidecar`); a resumed run continues
from them, exactly on the same shape, re-planned (every remaining sample once) with other ranks or workers.
Flags that only lerobot's own dataset reads (:data:`IGNORED_FLAGS`, a policy's ``drop_n_last_frames``) are
named once at start. A failure after the dataset was built is a :class:`TrainingFailed`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lerobot_wds.core.redact import redact_url
from lerobot_wds.reader.dataset import LeRobotWdsDataset
from lerobot_wds.tools.train_lerobot.errors import TrainingFailed, TrainLerobotError
from lerobot_wds.tools.train_lerobot.loader import BatchSampleLog, LoaderOptions, RankLoader, StateSaving
from lerobot_wds.tools.train_lerobot.seams import make_accelerator, parse_config, train_function
from lerobot_wds.tools.train_lerobot.sidecar import Shape

log = logging.getLogger(__name__)

# lerobot-train flags read only by lerobot's own dataset and sampler: train-lerobot decodes with lerobot-wds
IGNORED_FLAGS = ("--dataset.video_backend", "--dataset.revision")


def ignored_options(args: list[str], drop_n_last_frames: int) -> list[str]:
    """The options in ``args`` (and the policy's ``drop_n_last_frames``) that train-lerobot does not apply."""
    out = [a for a in args if a.split("=", 1)[0] in IGNORED_FLAGS]
    if drop_n_last_frames:
        out.append(f"drop_n_last_frames={drop_n_last_frames} (every frame is sampled)")
    return out


class _Run:
    """The state one ``train`` call shares with its seams: ROOT, options, the dataset built."""

    def __init__(self, root: str, sample_log: str | None, ignored: list[str]) -> None:
        self.root = root
        self.sample_log = sample_log
        self.ignored = ignored
        self.dataset: LeRobotWdsDataset | None = None
        self.start_step = 0
        self.cfg: Any = None
        self.loaders: list[RankLoader] = []
        self.is_main_process = True

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
        if self.ignored and self.is_main_process:
            log.warning("lerobot-wds: train-lerobot does not apply %s", ", ".join(self.ignored))
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
        self.dataset, self.cfg = dataset, cfg
        return dataset, None

    def rank_loader(self, data_loader: Any, accelerator: Any, device_placement: Any) -> RankLoader | None:
        """Our loader for ``data_loader`` when it is the one lerobot built over our dataset, else None."""
        dataset = self.dataset
        if getattr(data_loader, "dataset", None) is not dataset or dataset is None:
            return None
        sample_log = BatchSampleLog(self.sample_log, accelerator.process_index) if self.sample_log else None
        options = LoaderOptions.of(data_loader)
        loader = RankLoader(
            dataset,
            options,
            device=accelerator.device if device_placement is not False else None,
            start_step=self.start_step,
            sample_log=sample_log,
            states=self.state_saving(accelerator, options),
        )
        self.loaders.append(loader)
        if accelerator.is_main_process and loader.resumed:
            log.info("lerobot-wds: resuming at step %d: %s", self.start_step, loader.resumed)
        if accelerator.is_main_process:
            log.info(
                "lerobot-wds: each of %d ranks reads its own episodes of %s: %d batches of %d per epoch per rank, "
                "%d workers, starting at step %d (epoch %d)",
                accelerator.num_processes,
                redact_url(self.root),
                loader.per_epoch,
                dataset.batch_size,
                loader.options.num_workers,
                self.start_step,
                loader.epoch,
            )
        return loader

    def state_saving(self, accelerator: Any, options: LoaderOptions) -> StateSaving:
        """Dataset states beside every checkpoint lerobot saves (``OUTPUT/lerobot_wds_state``, :mod:`sidecar`)."""
        from lerobot.common.train_utils import should_save_checkpoint

        cfg = self.cfg
        shape = Shape(accelerator.num_processes, options.num_workers, cfg.batch_size)
        return StateSaving(
            Path(cfg.output_dir) / "lerobot_wds_state",
            accelerator.process_index,
            shape,
            lambda step: bool(cfg.save_checkpoint) and should_save_checkpoint(step, cfg.save_freq, cfg.steps),
        )


def repo_name(root: str) -> str:
    """The last path segment of ROOT, without credentials or query: the ``lerobot_wds/<name>`` repo id's name."""
    path = urlsplit(redact_url(root)).path if "://" in root else root
    return path.rstrip("/").rsplit("/", 1)[-1] or "root"


def lerobot_argv(root: str, args: list[str]) -> list[str]:
    """lerobot-train's arguments for ROOT: ``args`` plus streaming (and a repo id unless given)."""
    out = [a for a in args if not a.startswith("--dataset.streaming")]
    if not any(a.startswith("--dataset.repo_id") for a in out) and not any(
        a.startswith("--config_path") for a in out
    ):
        out.append(f"--dataset.repo_id=lerobot_wds/{repo_name(root)}")
    out.append("--dataset.streaming=true")
    return out


def run_train(root: str, args: list[str], sample_log: str | None = None) -> None:
    """Runs lerobot's ``train`` with ``args`` (lerobot-train's flags) on ROOT through our loader.

    Raises:
        TrainLerobotError: lerobot-train's flags do not parse, an option train-lerobot cannot honour, or
            lerobot's train finished without asking for our dataset's loader (a loop that differs from 0.6's).
        TrainingFailed: anything raised once the dataset was built (a shape error, a full disk at checkpoint).
    """
    from lerobot.utils.import_utils import register_third_party_plugins

    argv = sys.argv
    sys.argv = [argv[0], *lerobot_argv(root, args)]  # lerobot's config reads its flags from the command line
    try:
        register_third_party_plugins()
        cfg = parse_config()
        cfg.validate()
        run = _Run(root, sample_log, ignored_options(args, getattr(cfg.trainable_config, "drop_n_last_frames", 0)))
        accelerator = make_accelerator(cfg, run.rank_loader)
        run.is_main_process = accelerator.is_main_process
        train = train_function(run.make_datasets)
        try:
            train(cfg, accelerator=accelerator)
        except Exception as e:
            if run.dataset is None:
                raise
            raise TrainingFailed(f"training on {redact_url(root)} failed: {type(e).__name__}: {e}") from e
    finally:
        sys.argv = argv
    if run.dataset is not None and not run.loaders:
        raise TrainLerobotError(
            "lerobot's train never handed its DataLoader to accelerator.prepare; this lerobot version is not "
            "supported (train-lerobot supports lerobot 0.6.x)"
        )
