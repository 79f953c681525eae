"""In-pipeline batching (``batch_size=``) equals DataLoader's default collate of the same samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from lerobot_wds import LeRobotWdsDataset


def _assert_same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("return_uint8", [True, False])
@pytest.mark.parametrize("window", ["single", "sarm", "history"])
def test_batches_equal_collated_samples(wds_root_padded: Path, window: str, return_uint8: bool) -> None:
    probe = LeRobotWdsDataset(wds_root_padded, shuffle=False)
    cams = list(probe.camera_keys)
    kw = {"preset": window} if window != "history" else {"delta_timestamps": {cams[0]: [-0.2, -0.1, 0.0]}}
    samples = list(LeRobotWdsDataset(wds_root_padded, shuffle=False, return_uint8=return_uint8, **kw))
    batches = list(
        LeRobotWdsDataset(wds_root_padded, shuffle=False, return_uint8=return_uint8, batch_size=4, **kw)
    )
    assert [len(b["index"]) for b in batches] == [4] * (len(samples) // 4) + (
        [len(samples) % 4] if len(samples) % 4 else []
    )
    for i, batch in enumerate(batches):
        _assert_same(batch, default_collate(samples[4 * i : 4 * i + 4]))


def test_batches_through_dataloader_workers_cover_every_frame_once(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(wds_root, preset="single", shuffle=True, seed=3, return_uint8=True, batch_size=5)
    plain = LeRobotWdsDataset(wds_root, preset="single", shuffle=True, seed=3, return_uint8=True)
    got = list(DataLoader(ds, batch_size=None, num_workers=2))
    want = list(DataLoader(plain, batch_size=5, num_workers=2))

    def anchors(bs: list[dict]) -> list[tuple[int, int]]:
        return [(int(e), int(f)) for b in bs for e, f in zip(b["episode_index"], b["frame_index"], strict=True)]

    # same seed, same split: the very same samples (repeats used to equalise workers included)
    assert sorted(anchors(got)) == sorted(anchors(want))
    assert len(anchors(got)) == ds.samples_per_rank(num_workers=2)
    assert len(set(anchors(got))) == sum(s.frames for s in ds.manifest.shards)


@pytest.mark.parametrize("preset", [None, "single"])
@pytest.mark.parametrize("batch_size", [None, 3])
def test_small_blocks_shuffled_decode_each_frame_once_and_right(
    wds_root: Path, batch_size: int | None, preset: str | None
) -> None:
    """Blocks dropped as their anchors finish are never needed again: every frame is decoded exactly once."""
    from shard_factory import read_identity

    from lerobot_wds.reader.decode import DecodeConfig

    ds = LeRobotWdsDataset(
        wds_root,
        shuffle=True,
        seed=5,
        return_uint8=True,
        decode=DecodeConfig(block_frames=4),
        batch_size=batch_size,
    )
    cams = list(ds.camera_keys)
    seen = []
    for item in ds:
        batch = item if batch_size else default_collate([item])
        for i, (ep, fr) in enumerate(
            zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True)
        ):
            for ci, cam in enumerate(cams):
                assert read_identity(batch[cam][i]) == (ep, fr, ci)
            seen.append((ep, fr))
    total = sum(s.frames for s in ds.manifest.shards)
    assert sorted(seen) == sorted(set(seen)) and len(seen) == total
    stats = ds.stats()
    assert stats["decoded_frames"] == total * len(cams)
    # anchors only: an open episode holds one block, so the pool keeps 3 episodes within the budget; blocks are
    # dropped once the batch holding their last anchor is built, so a batch can hold one more block per sample
    block = 64 * 48 * 3 * 2 * 4
    assert stats["frames"]["peak_cost"] <= block * (3 + (batch_size or 1))
