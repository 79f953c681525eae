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
    plain = LeRobotWdsDataset(wds_root, preset="single", shuffle=True, seed=3, return_uint8=True, mix_batch=5)
    got = list(DataLoader(ds, batch_size=None, num_workers=2))
    want = list(DataLoader(plain, batch_size=5, num_workers=2))

    def anchors(bs: list[dict]) -> list[tuple[int, int]]:
        return [(int(e), int(f)) for b in bs for e, f in zip(b["episode_index"], b["frame_index"], strict=True)]

    # same seed, same split: the very same samples (repeats used to equalise workers included)
    assert sorted(anchors(got)) == sorted(anchors(want))
    assert len(anchors(got)) == ds.samples_per_rank(num_workers=2)
    assert len(set(anchors(got))) == sum(s.frames for s in ds.manifest.shards)


WINDOWED = {"observation.images.front": [-0.8, 0.0, 0.8], "observation.images.wrist": [-0.8, 0.0, 0.8]}


@pytest.mark.parametrize("windows", [None, "single", "stride8"])
@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("budget_frames", [10_000, 40])
def test_shuffled_pool_decodes_each_frame_once_within_budget(
    wds_root: Path, batch_size: int | None, windows: str | None, budget_frames: int
) -> None:
    """Every anchor once with the right pixels; frames decoded once per unit; decoded bytes within budget."""
    from lerobot_wds.reader.decoding.decode import DecodeConfig
    from lerobot_wds.testing.shards import read_identity

    frame = 64 * 48 * 3
    ds = LeRobotWdsDataset(
        wds_root,
        preset="single" if windows == "single" else None,
        delta_timestamps=WINDOWED if windows == "stride8" else None,
        shuffle=True,
        seed=5,
        return_uint8=True,
        decode=DecodeConfig(frame_cache_bytes=budget_frames * frame),
        batch_size=batch_size,
    )
    cams = list(ds.camera_keys)
    seen = []
    for item in ds:
        batch = item if batch_size else default_collate([item])
        pairs = zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True)
        for i, (ep, fr) in enumerate(pairs):
            for ci, cam in enumerate(cams):
                img = batch[cam][i]
                assert read_identity(img if img.ndim == 3 else img[1]) == (ep, fr, ci)
            seen.append((ep, fr))
    total = sum(s.frames for s in ds.manifest.shards)
    assert sorted(seen) == sorted(set(seen)) and len(seen) == total
    stats = ds.stats()
    assert stats["frames"]["evictions"] == 0 and stats["frames"]["cost"] == 0  # all released at the end
    assert stats["frames"]["peak_cost"] <= budget_frames * frame
    if windows != "stride8":
        assert stats["decoded_frames"] == total * len(cams)  # one GOP per unit, each frame once
    else:  # each unit decodes its residue classes once, plus the clamped first/last frames it shows
        assert total * len(cams) <= stats["decoded_frames"] <= 1.6 * total * len(cams)


def test_dataloader_constructor_is_the_batched_path(wds_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import lerobot_wds
    from lerobot_wds.reader import dataset as dataset_module

    loader = lerobot_wds.dataloader(
        str(wds_root), batch_size=5, num_workers=0, preset="single", seed=3, return_uint8=True
    )
    assert loader.dataset.batch_size == 5 and loader.batch_size is None
    got = list(loader)
    dataset_module._HINTED.clear()
    with caplog.at_level(logging.INFO, logger="lerobot_wds.reader.dataset"):
        plain = LeRobotWdsDataset(wds_root, preset="single", seed=3, return_uint8=True, mix_batch=5)
        want = list(DataLoader(plain, batch_size=5, num_workers=0))
    assert sum("lerobot_wds.dataloader(" in r.getMessage() for r in caplog.records) == 1  # said once
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k]
