"""The fast path in one line: a DataLoader over a dataset that builds its batches in place.

``DataLoader(LeRobotWdsDataset(root), batch_size=16, num_workers=2)`` works, but DataLoader's collate then
copies every image once more into fresh shared memory; a dataset built with ``batch_size=`` writes decoded
frames straight into reused shared-memory batch slots (see :mod:`batch_slots`; figures in the README's
benchmark tables). :func:`dataloader` sets that up; the per-sample path logs the hint once per process.
"""

from __future__ import annotations

import logging
from typing import Any

from torch.utils.data import DataLoader

from lerobot_wds.reader.dataset import LeRobotWdsDataset

log = logging.getLogger(__name__)


def dataloader(
    source: str,
    *,
    batch_size: int,
    num_workers: int = 2,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    **dataset_options: Any,
) -> DataLoader:
    """Returns ``DataLoader(LeRobotWdsDataset(source, batch_size=..., **dataset_options), batch_size=None)``.

    Batches hold exactly what ``DataLoader(ds, batch_size=batch_size)`` over the per-sample dataset gives
    (same keys, dtypes and values; the last batch of a worker's epoch may be short). The dataset is the
    loader's ``.dataset`` (for ``set_epoch``, ``state_dict``, ``stats``).
    """
    ds = LeRobotWdsDataset(source, batch_size=batch_size, **dataset_options)
    extra: dict[str, Any] = {}
    if prefetch_factor is not None and num_workers > 0:
        extra["prefetch_factor"] = prefetch_factor
    return DataLoader(
        ds,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        **extra,
    )
