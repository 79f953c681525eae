"""The reader's two private torch/torchcodec calls and their fallbacks, run for real against the default path.

- ``batch_slots.shared_storage`` uses ``torch.UntypedStorage._new_shared`` while torch has it and
  ``UntypedStorage(n).share_memory_()`` otherwise (switched off here, also inside DataLoader workers).
- ``decode.gop_starts`` asks torchcodec's ``VideoDecoder._get_key_frame_indices`` for the keyframes; without
  it every decode starts at the first frame (sequential units): slower, same samples.
"""

from __future__ import annotations

import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, get_worker_info
from torchcodec.decoders import VideoDecoder

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.reader.assembling import batch_slots
from lerobot_wds.reader.assembling.config import AssembleConfig
from lerobot_wds.reader.decoding import frames

PATHS = ["private", "public"]


def _use(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "public":
        monkeypatch.setattr(batch_slots, "_new_shared", None)
    elif batch_slots._new_shared is None:
        pytest.skip("this torch has no UntypedStorage._new_shared: the public path is the only one")


@pytest.mark.parametrize("path", PATHS)
def test_shared_storage_is_shared_memory_that_a_receiver_aliases(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(path, monkeypatch)
    storage = batch_slots.shared_storage(1000)
    assert storage.is_shared() and storage.nbytes() == 1000 and storage.device.type == "cpu"
    mine = torch.empty(0, dtype=torch.uint8).set_(storage)
    mine.copy_(torch.arange(1000) % 251)
    received = pickle.loads(bytes(ForkingPickler.dumps(storage)))  # what a DataLoader worker's queue does
    theirs = torch.empty(0, dtype=torch.uint8).set_(received)
    assert torch.equal(theirs, torch.arange(1000) % 251)
    theirs[7] = 123  # the same pages, not a copy
    assert int(mine[7]) == 123


class _Record:
    """Collate (in the worker) noting which constructor ran and whether the batch was born in shared memory."""

    def __init__(self, camera: str) -> None:
        self.camera = camera

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        slot = getattr(batch, "slot", None)  # a SlotBatch (batch_slots > 0) carries its slot
        storage = slot.storage if slot is not None else batch[self.camera].untyped_storage()
        info = get_worker_info()
        batch["private_constructor"] = batch_slots._new_shared is not None
        batch["born_shared"] = storage.is_shared()
        batch["slots"] = dict(info.dataset.stats().get("batch_slots", {}))
        return batch


def _epoch(root: Path, slots: int) -> list[dict[str, Any]]:
    ds = LeRobotWdsDataset(
        root, preset="sarm", seed=5, return_uint8=True, batch_size=3, assemble=AssembleConfig(batch_slots=slots)
    )
    # fork: the workers inherit the switch the test set; batches are dropped (cloned) so slots get reused
    record = _Record(ds.camera_keys[0])
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=record, multiprocessing_context="fork")
    return [{k: v.clone() if torch.is_tensor(v) else v for k, v in b.items()} for b in loader]


@pytest.mark.parametrize("slots", [0, 2])
def test_dataloader_batches_through_the_public_fallback_equal_the_default_path(
    wds_root: Path, slots: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = _epoch(wds_root, slots)
    monkeypatch.setattr(batch_slots, "_new_shared", None)
    public = _epoch(wds_root, slots)
    assert len(public) == len(default) > 2
    has_private = getattr(torch.UntypedStorage, "_new_shared", None) is not None
    if slots:  # the fallback's slots were reused, not only created (both workers' last batches)
        assert sum(b["slots"]["reused"] for b in public[-2:]) > 0
    else:
        assert all(b["slots"] == {} for b in public)
    for a, b in zip(default, public, strict=True):
        del a["slots"], b["slots"]
        assert a.pop("private_constructor") is has_private and b.pop("private_constructor") is False
        assert a.pop("born_shared") is True and b.pop("born_shared") is True
        assert list(a) == list(b)
        for key in a:
            if torch.is_tensor(a[key]):
                assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
            else:
                assert a[key] == b[key], key


def _samples_and_gops(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict[str, Any]], list[list[int]]]:
    seen: list[list[int]] = []
    real = frames.gop_starts

    def spy(*args: Any) -> list[int]:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(frames, "gop_starts", spy)
    samples = list(LeRobotWdsDataset(root, preset="sarm", seed=3, return_uint8=True))
    monkeypatch.setattr(frames, "gop_starts", real)
    return samples, seen


def test_samples_without_torchcodec_keyframe_index_equal_the_default_path(
    wds_root_padded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default, default_gops = _samples_and_gops(wds_root_padded, monkeypatch)
    # fixture: lead-in 3, a keyframe every 5 mini-MP4 frames -> episode frames -3, 2, 7, ...
    assert default_gops and all(g[:2] == [-3, 2] for g in default_gops), (
        f"torchcodec reports no keyframes ({default_gops[:1]}): the reader runs on its fallback, decoding slower"
    )
    monkeypatch.delattr(VideoDecoder, "_get_key_frame_indices", raising=False)
    fallback, fallback_gops = _samples_and_gops(wds_root_padded, monkeypatch)
    assert len(fallback_gops) == len(default_gops) and all(g == [-3] for g in fallback_gops)

    # the plan (so the order within the epoch) follows the GOPs; the samples themselves are the same
    def by_anchor(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(samples, key=lambda s: (int(s["episode_index"]), int(s["frame_index"])))

    default, fallback = by_anchor(default), by_anchor(fallback)
    assert len(fallback) == len(default) == 9 + 5 + 12 + 7
    for a, b in zip(default, fallback, strict=True):
        assert list(a) == list(b)
        for key in a:
            if torch.is_tensor(a[key]):
                assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
            else:
                assert a[key] == b[key], key
