"""``ds.stats()`` in the main process sums every counter of the DataLoader workers (``reader/board.py``).

Each worker reports its own frame pool's counters, read straight from its ``FramePool`` (not through the
board), in a last item after its iteration ended; the main process's ``stats()`` must equal their sum, counter
by counter, and the delivered frames must equal what the loop received.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.reader.board import COUNTERS

CAMERAS = 2  # RootSpec's default: front and wrist
DECODE_COUNTERS = [
    c for c in COUNTERS if c.split(".")[0] in ("frames", "decoders", "batch_slots") or "_frames" in c
]


def own_counts(ds: LeRobotWdsDataset) -> dict[str, int]:
    """This process's reader's counters, read from its frame pool and slot ring themselves."""
    pub = ds._last_publisher
    assert pub is not None
    out = {f"{cache}.{k}": v for cache, st in pub.frames.stats().items() for k, v in st.as_dict().items()}
    out = {k: int(v) for k, v in out.items() if not k.endswith("hit_rate")}
    out |= {
        "decoded_frames": pub.frames.decoded_frames,
        "delivered_frames": pub.frames.delivered_frames,
        "decode_calls": pub.frames.decode_calls,
        "decode_passes": pub.frames.decode_passes,
        "batch_slots.created": pub.ring.created if pub.ring is not None else 0,
        "batch_slots.reused": pub.ring.reused if pub.ring is not None else 0,
    }
    return out


class ReportingDataset(LeRobotWdsDataset):
    """Yields the dataset's items, then one ``{"worker_counts": ...}`` item with this reader's own counters."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from super().__iter__()
        yield {"worker_counts": own_counts(self)}


def flatten(stats: dict[str, Any]) -> dict[str, int]:
    out = {}
    for key, value in stats.items():
        if isinstance(value, dict):
            out |= {f"{key}.{k}": v for k, v in value.items() if k != "hit_rate"}
        elif isinstance(value, int):
            out[key] = value
    return out


@pytest.mark.parametrize("batch_size", [None, 4], ids=["samples", "batches"])
def test_main_process_stats_equal_the_sum_of_two_workers(wds_root: Path, batch_size: int | None) -> None:
    ds = ReportingDataset(str(wds_root), preset="single", shuffle=True, seed=3, batch_size=batch_size)
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
    workers: list[dict[str, int]] = []
    samples = 0
    for item in loader:
        if "worker_counts" in item:
            workers.append(item["worker_counts"])
        else:
            samples += len(item["index"]) if batch_size else 1
    assert len(workers) == 2 and samples == ds.samples_per_rank(2)
    assert all(w["delivered_frames"] > 0 for w in workers)  # both workers read: the sum is a real sum
    stats = ds.stats()
    got = flatten(stats)
    want = {name: sum(w[name] for w in workers) for name in workers[0]}
    if not want["batch_slots.created"]:  # per-sample iteration makes no slots: stats() leaves them out
        assert "batch_slots" not in stats
        want = {k: v for k, v in want.items() if not k.startswith("batch_slots.")}
    assert {k: got[k] for k in want} == want
    assert stats["delivered_frames"] == samples * CAMERAS
    assert stats["decoded_frames"] >= stats["delivered_frames"] // 2 > 0
    hits, misses = stats["frames"]["hits"], stats["frames"]["misses"]
    assert stats["frames"]["hit_rate"] == pytest.approx(hits / (hits + misses))
    assert (stats["skipped_episodes"], stats["read_retries"], stats["skip_messages"]) == (0, 0, [])
    if batch_size:
        assert stats["batch_slots"]["created"] >= 2  # one ring per worker, each creating its slots


def test_in_process_stats_are_current_and_cover_every_counter(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(str(wds_root), preset="single", shuffle=False)
    assert ds.stats() == {}
    it = iter(ds)
    first = [next(it) for _ in range(3)]
    mid = ds.stats()  # mid-iteration, this process's reader: exact to the last item, not throttled
    assert mid["delivered_frames"] == len(first) * CAMERAS
    rest = sum(1 for _ in it)
    stats = ds.stats()
    assert stats["delivered_frames"] == (len(first) + rest) * CAMERAS
    assert "batch_slots" not in stats  # no workers, no slots
    assert {k: v for k, v in flatten(stats).items() if k in DECODE_COUNTERS} == {
        k: v for k, v in own_counts(ds).items() if k in DECODE_COUNTERS and not k.startswith("batch_slots.")
    }
    assert torch.is_tensor(first[0]["observation.images.front"])
