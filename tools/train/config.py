"""The training entry point's configuration: a frozen dataclass validated up front, and its argparse front.

The option names are a contract (launch scripts depend on them); the parser keeps no defaults of its own:
everything it leaves out comes from :class:`TrainConfig`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from typing import Any

from lerobot_wds.reader.scheduling.windows import Preset


@dataclass(frozen=True)
class TrainConfig:
    """One training (or ``--dummy`` throughput) run.

    Attributes:
        root: converted root (path or fsspec URL).
        preset / delta_timestamps: windows, as ``LeRobotWdsDataset`` takes them (exclusive).
        batch_size, num_workers: per rank.
        max_steps: stop after this many optimizer steps (0: run ``epochs`` full epochs).
        epochs: epochs to run at most.
        lr, seed: AdamW learning rate; seed of the data order, the model init and every RNG.
        checkpoint_dir, checkpoint_every, keep_checkpoints, resume: atomic checkpoints every N steps (0: none),
            the newest K kept; ``resume`` continues from the newest complete one (fresh start if none).
        dummy: no model: pull batches, move them to the device, log throughput.
        log_samples: per-rank JSON-lines file of each step's sample ``index`` values (``{rank}`` replaced).
        log_every: rank 0 prints a JSON metrics line every N steps.
        device: "cpu", "cuda" or "auto" (cuda when available).
        uneven: "pad" or "trim": how every reader gets the same sample count (``LeRobotWdsDataset``'s option).
        cache_dir, cache_limit: the node-local cache of episode bytes (directory, bound in bytes), or None.
    """

    root: str
    preset: Preset | None = None
    delta_timestamps: dict[str, list[float]] | None = None
    batch_size: int = 8
    num_workers: int = 2
    max_steps: int = 0
    epochs: int = 1
    lr: float = 3e-4
    seed: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    resume: bool = False
    dummy: bool = False
    log_samples: str | None = None
    log_every: int = 10
    device: str = "auto"
    uneven: str = "pad"
    cache_dir: str | None = None
    cache_limit: int | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.delta_timestamps is not None:
            raise ValueError("give --preset or --delta-timestamps, not both")
        if self.preset not in (None, "single", "sarm"):
            raise ValueError(f"--preset {self.preset!r}; expected 'single' or 'sarm'")
        for name in ("batch_size", "epochs", "keep_checkpoints", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "max_steps", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if (self.checkpoint_every or self.resume) and not self.checkpoint_dir:
            raise ValueError("--checkpoint-every and --resume need --checkpoint-dir")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device {self.device!r}; expected auto, cpu or cuda")
        if self.uneven not in ("pad", "trim"):
            raise ValueError(f"--uneven {self.uneven!r}; expected pad or trim")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if (self.cache_dir is None) != (self.cache_limit is None):
            raise ValueError("--cache-dir and --cache-limit go together (a cache needs its bound in bytes)")


def _json_windows(text: str) -> dict[str, list[float]]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise argparse.ArgumentTypeError('expected {"key": [seconds, ...], ...}')
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Adds the training options (names are part of the contract with the launch scripts)."""
    S = argparse.SUPPRESS  # noqa: N806 - an option left out must not reach TrainConfig
    p.add_argument("root", help="converted root (path or fsspec URL)")
    p.add_argument(
        "--preset",
        choices=["single", "sarm"],
        default=S,
        help="windows: one frame of every camera, or SARM's 13 steps for every camera and the state",
    )
    p.add_argument(
        "--delta-timestamps",
        type=_json_windows,
        default=S,
        help='windows as JSON {"feature key": [seconds, ...]}, like LeRobotDataset (instead of --preset)',
    )
    for name, kind, text in (
        ("batch-size", int, "samples per batch and rank (default 8)"),
        ("num-workers", int, "DataLoader workers per rank (default 2)"),
        ("max-steps", int, "stop after this many optimizer steps (default 0: run --epochs)"),
        ("epochs", int, "epochs to run when --max-steps is 0 (default 1)"),
        ("lr", float, "learning rate of AdamW (default 3e-4)"),
        ("seed", int, "seed of the model, the shuffles and every random choice (default 0)"),
        ("checkpoint-every", int, "write a checkpoint every N steps (default 0: never; needs --checkpoint-dir)"),
        ("keep-checkpoints", int, "how many newest checkpoints to keep (default 2)"),
        ("log-every", int, "print a JSON log line every N steps (default 10)"),
        ("cache-limit", int, "bound of the node-local cache in bytes (with --cache-dir)"),
    ):
        p.add_argument(f"--{name}", type=kind, default=S, help=text)
    p.add_argument(
        "--cache-dir",
        default=S,
        help="node-local cache of episode bytes, shared by the node's ranks and workers (with --cache-limit); "
        "each node then reads the same episodes every epoch, later epochs from local disk",
    )
    p.add_argument("--checkpoint-dir", default=S, help="where checkpoints are written and resumed from")
    p.add_argument("--resume", action="store_true", default=S, help="continue from the newest checkpoint")
    p.add_argument("--dummy", action="store_true", default=S, help="no model: pull batches, log throughput")
    p.add_argument("--log-samples", default=S, metavar="PATTERN", help="per-rank JSON lines ({rank} replaced)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=S, help="default auto: cuda when present")
    p.add_argument(
        "--uneven",
        choices=["pad", "trim"],
        default=S,
        help="every reader yields the same count: repeat a few samples (pad, default) or drop a few (trim)",
    )


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Builds the config from parsed arguments (only the options given)."""
    names = {f.name for f in fields(TrainConfig)}
    given: dict[str, Any] = {k: v for k, v in vars(args).items() if k in names}
    return TrainConfig(**given)
