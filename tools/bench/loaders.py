"""What every benchmarked loader is built from: the bundle the consumer checks, the probe collate that carries
worker counters with each batch, and the shuffled DataLoader map-style peers get (as a training loop builds it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, default_collate, get_worker_info

from lerobot_wds.tools.bench.scenarios import BenchConfig

STATS_KEY = "__bench_worker_stats__"


class ProbeCollate:
    """``default_collate`` plus the worker's counters under :data:`STATS_KEY` (runs inside the worker)."""

    def __init__(
        self, probe: Callable[[Any], Mapping[str, Any]], main_dataset: Any, *, batched: bool = False
    ) -> None:
        self.probe = probe
        self.batched = batched  # the dataset yields whole batches (DataLoader batch_size=None)
        self._main_dataset = main_dataset  # used when num_workers == 0 (no worker copy)

    def __getstate__(self) -> dict[str, Any]:
        return {"probe": self.probe, "batched": self.batched, "_main_dataset": None}  # workers: own dataset copy

    def __call__(self, samples: Any) -> dict[str, Any]:
        # a dataset-built batch is annotated in place: copying it into a new dict would lose its slot transport
        batch = samples if self.batched else default_collate(samples)
        info = get_worker_info()
        dataset = info.dataset if info is not None else self._main_dataset
        batch[STATS_KEY] = {"worker": info.id if info is not None else -1, "stats": dict(self.probe(dataset))}
        return batch


@dataclass
class LoaderBundle:
    """A ready DataLoader and what the consumer must know to check its batches."""

    loader: DataLoader
    camera_keys: tuple[str, ...]
    fps: float
    dataset_frames: int
    info: dict[str, Any]
    # the loader's counters summed over its workers, read in this process (ours: ``dataset.stats``); None for
    # the peers, whose workers' counters come with each batch through :class:`ProbeCollate`
    main_stats: Callable[[], Mapping[str, Any]] | None = None
    set_epoch: Callable[[int], None] | None = None  # ours: the epoch the next iteration reads


def shuffled_loader(
    dataset: Any, config: BenchConfig, probe: Callable[[Any], Mapping[str, Any]], **extra: Any
) -> DataLoader:
    """A peer's DataLoader as a training loop builds it: a seeded shuffling sampler, the config's batch size and
    workers, and the probe collate (map-style peers: LeRobotDataset, lerobot-lancedb)."""
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        shuffle=True,
        generator=generator,
        collate_fn=ProbeCollate(probe, dataset),
        persistent_workers=False,
        **extra,
    )
