"""Reused shared-memory batch slots: a slot is rewritten only after every receiver let go of it."""

from __future__ import annotations

import gc
import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, get_worker_info

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.reader.assembling.batch_slots import FREE, HELD, SlotBatch, SlotRing, pack
from lerobot_wds.reader.assembling.config import AssembleConfig
from lerobot_wds.reader.scheduling.windows import SARM_DELTA_INDICES

SHAPES = {
    "cam": ((2, 3, 4, 5), torch.uint8),
    "img": ((2, 3, 4, 5), torch.float32),
    "index": ((2,), torch.int64),
    "pad": ((2, 3), torch.bool),
}


def _batch(ring: SlotRing, fill: int) -> SlotBatch:
    slot, layout = pack(SHAPES, ring)
    data: dict[str, Any] = {}
    for key, (view, _) in layout.items():
        view.copy_(torch.arange(view.numel()).add(fill).reshape(view.shape).to(view.dtype))
        data[key] = view
    data["task"] = ["a", "b"]
    return SlotBatch(data, slot, layout)


def _send(batch: SlotBatch) -> dict[str, Any]:
    """What a DataLoader worker's queue does: pickle with ForkingPickler (fds pass over a socket)."""
    return pickle.loads(bytes(ForkingPickler.dumps(batch)))


def _expected(fill: int) -> dict[str, torch.Tensor]:
    return {
        k: torch.arange(int(torch.tensor(s).prod())).add(fill).reshape(s).to(d) for k, (s, d) in SHAPES.items()
    }


def test_received_batch_is_plain_and_exact_and_frees_its_slot_when_dropped() -> None:
    ring = SlotRing(max_slots=4)
    got = _send(_batch(ring, 7))
    assert type(got) is dict and list(got) == [*SHAPES, "task"]
    for key, want in _expected(7).items():
        assert got[key].dtype == want.dtype and torch.equal(got[key], want), key
        assert not got[key].is_shared()  # a plain tensor: re-sending it copies instead of aliasing the slot
    assert got["task"] == ["a", "b"]
    slot = ring.slots[0]
    assert slot.sent and slot.array[0] == HELD and not slot.reusable()
    # a view the receiver kept still holds the slot
    keep = got["cam"][1]
    del got
    gc.collect()
    assert slot.array[0] == HELD
    del keep
    gc.collect()
    assert slot.array[0] == FREE and slot.reusable()
    _batch(ring, 1)
    assert (ring.created, ring.reused, len(ring.slots)) == (1, 1, 1)


def test_busy_slots_are_never_rewritten() -> None:
    ring = SlotRing(max_slots=2)
    held = [_send(_batch(ring, 100 * i)) for i in range(4)]  # more than max_slots in flight at once
    worker_side = _batch(ring, 900)  # unsent, alive in the "worker"
    assert ring.created == 5 and ring.reused == 0 and len(ring.slots) == 2
    for i, got in enumerate(held):
        for key, want in _expected(100 * i).items():
            assert torch.equal(got[key], want), (i, key)
    del held
    gc.collect()
    again = _batch(ring, 5)  # a released slot is reused; the live unsent one is not
    assert ring.reused == 1 and again.slot is not worker_side.slot
    assert torch.equal(worker_side["index"], _expected(900)["index"])


def test_a_batch_pickled_twice_is_copied_the_second_time() -> None:
    ring = SlotRing(max_slots=1)
    batch = _batch(ring, 3)
    first, second = _send(batch), _send(batch)
    del batch, first
    gc.collect()
    assert ring.slots[0].reusable()
    _send(_batch(ring, 50))  # rewrites the slot the first receiver freed
    assert ring.reused == 1
    for key, want in _expected(3).items():
        assert torch.equal(second[key], want), key


def test_unsent_batch_dropped_in_the_worker_is_reused() -> None:
    ring = SlotRing(max_slots=1)
    _batch(ring, 0)
    gc.collect()
    _batch(ring, 1)
    assert (ring.created, ring.reused) == (1, 1)


def test_pack_rejects_nothing_silently() -> None:
    with pytest.raises(ValueError, match="max_slots"):
        SlotRing(max_slots=-1)
    with pytest.raises(ValueError, match="batch_slots"):
        AssembleConfig(batch_slots=-1)
    with pytest.raises(ValueError, match="mapped_batch_bytes"):
        AssembleConfig(mapped_batch_bytes=-1)


class _Annotate:
    """Collate of a batch-yielding dataset that records the worker's slot counters on the batch in place."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        info = get_worker_info()
        batch["slots"] = dict(info.dataset.stats().get("batch_slots", {})) if info else {}
        return batch


def _epoch(root: Path, slots: int, hold: bool) -> tuple[list[dict[str, Any]], list[dict[str, int]]]:
    ds = LeRobotWdsDataset(
        root, preset="sarm", seed=11, return_uint8=True, batch_size=3, assemble=AssembleConfig(batch_slots=slots)
    )
    batches, counters = [], []
    for batch in DataLoader(ds, batch_size=None, num_workers=2, collate_fn=_Annotate()):
        counters.append(batch.pop("slots"))
        # holding every batch forces fresh slots; dropping them lets workers reuse (values are cloned)
        batches.append(batch if hold else {k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()})
    return batches, counters


def test_dataloader_epoch_with_slots_equals_fresh_shared_memory(wds_root: Path) -> None:
    from lerobot_wds.testing.shards import read_identity

    fresh, none = _epoch(wds_root, slots=0, hold=True)
    held, _ = _epoch(wds_root, slots=2, hold=True)
    dropped, counters = _epoch(wds_root, slots=2, hold=False)
    assert all(c == {} for c in none)
    assert sum(c["reused"] for c in counters[-2:]) > 0  # both workers' last batches came from reused slots
    for a, b, c in zip(fresh, held, dropped, strict=True):
        assert list(a) == list(b) == list(c)
        for key in a:
            if torch.is_tensor(a[key]):
                assert torch.equal(a[key], b[key]) and torch.equal(a[key], c[key]), key
            else:
                assert a[key] == b[key] == c[key], key
    cam = LeRobotWdsDataset(wds_root).camera_keys[0]
    for batch in held:  # the images are the anchors' own frames (the identity bits), not a neighbour's
        for i, (ep, fr) in enumerate(
            zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True)
        ):
            anchor = batch[cam][i, SARM_DELTA_INDICES.index(0)]
            assert read_identity(anchor)[:2] == (ep, fr)


class _MallocState:
    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from lerobot_wds.reader.assembling import worker_memory

        batch["malloc_tuned"] = worker_memory._applied
        return batch


@pytest.mark.parametrize("tune", [True, False])
def test_malloc_thresholds_are_set_in_workers_only(wds_root: Path, tune: bool) -> None:
    from lerobot_wds.reader.assembling import worker_memory

    ds = LeRobotWdsDataset(wds_root, batch_size=4, assemble=AssembleConfig(tune_worker_malloc=tune))
    batch = next(iter(DataLoader(ds, batch_size=None, num_workers=1, collate_fn=_MallocState())))
    assert batch["malloc_tuned"] is (True if tune else None)  # glibc Linux here: mallopt accepts both
    next(iter(ds))  # iterating in the main process leaves the user's allocator alone
    assert worker_memory._applied is None


def test_persistent_workers_keep_held_batches_intact_while_the_next_epoch_reuses_slots(wds_root: Path) -> None:
    """Epoch 0's batches are all held while epoch 1 runs in the same (persistent) workers, dropping its own."""

    def run(slots: int) -> list[list[dict[str, Any]]]:
        ds = LeRobotWdsDataset(
            wds_root,
            preset="single",
            seed=2,
            return_uint8=True,
            batch_size=4,
            assemble=AssembleConfig(batch_slots=slots),
        )
        loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, collate_fn=_Annotate())
        ds.set_epoch(0)
        held = list(loader)
        ds.set_epoch(1)
        dropped = [{k: v.clone() if torch.is_tensor(v) else v for k, v in b.items()} for b in loader]
        return [held, dropped]

    fresh, slotted = run(0), run(2)
    assert sum(b["slots"]["reused"] for b in slotted[1][-2:]) > 0  # epoch 1 rewrote slots...
    for e in range(2):  # ...and nothing anyone still held changed
        assert len(fresh[e]) == len(slotted[e])
        for a, b in zip(fresh[e], slotted[e], strict=True):
            assert [k for k in a if k != "slots"] == [k for k in b if k != "slots"]
            for key in a:
                if key != "slots" and torch.is_tensor(a[key]):
                    assert torch.equal(a[key], b[key]), (e, key)


@pytest.mark.parametrize("through_file", [True, False])
def test_slot_write_lands_in_the_received_tensors_through_the_file_or_the_mapping(through_file: bool) -> None:
    ring = SlotRing(max_slots=2)
    slot, layout = pack(SHAPES, ring)
    if not through_file:
        slot._fd = None  # the file_system sharing strategy gives no descriptor: written through the mapping
    assert slot.writes_through_file is through_file
    want = _expected(3)
    data: dict[str, Any] = {}
    for key, (view, offset) in layout.items():
        slot.write(offset, want[key].numpy())
        data[key] = view
    got = _send(SlotBatch(data, slot, layout))
    for key in SHAPES:
        assert torch.equal(got[key], want[key]), key
    with pytest.raises(ValueError, match="overflows"):
        slot.write(slot.capacity - 2, torch.zeros(3, dtype=torch.uint8).numpy())


class _ShmemRss:
    """Collate that records the worker's resident shared memory (kB, /proc/self/status) after building a batch."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        batch["rss_shmem_kb"] = int(fields["RssShmem"].split()[0])
        return batch


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc/self/status")
def test_workers_do_not_hold_the_batch_slots_they_wrote_in_their_rss(tmp_path: Path) -> None:
    """Images of large batches go into the slots through the file: a worker's RSS does not carry the batches in
    flight (with the mapping, each worker held every slot it ever filled, 1.7 GB at 480x640 x 3 cameras, sarm,
    batch 16); small batches go through the mapping, and both give the same batches."""
    from lerobot_wds.testing.shards import RootSpec, make_root, read_identity

    make_root(tmp_path, RootSpec(lengths=(40, 36, 44, 38), width=320, height=240, episodes_per_shard=2, gop=8))
    payload_kb = 8 * 13 * 2 * 3 * 320 * 240 // 1024  # one batch's images: 23 MB

    def run(mapped_batch_bytes: int) -> list[dict[str, Any]]:
        assemble = AssembleConfig(mapped_batch_bytes=mapped_batch_bytes)
        ds = LeRobotWdsDataset(tmp_path, preset="sarm", seed=5, return_uint8=True, batch_size=8, assemble=assemble)
        return list(DataLoader(ds, batch_size=None, num_workers=2, collate_fn=_ShmemRss()))

    mapped = run(64 << 20)  # below the threshold: written through the mapping, the slots stay in the RSS
    assert max(b["rss_shmem_kb"] for b in mapped) > payload_kb
    batches = run(16 << 20)  # above it: through the file
    assert len(batches) == len(mapped) >= 8
    assert max(b["rss_shmem_kb"] for b in batches) < payload_kb // 4
    cams = LeRobotWdsDataset(tmp_path).camera_keys
    for a, b in zip(mapped, batches, strict=True):
        assert all(torch.equal(a[c], b[c]) for c in cams)
    for batch in batches:  # and the images are the anchors' own frames
        for i, (ep, fr) in enumerate(
            zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True)
        ):
            assert read_identity(batch[cams[0]][i, SARM_DELTA_INDICES.index(0)])[:2] == (ep, fr)
