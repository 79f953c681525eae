"""``on_error="skip"`` skips every kind of bad shard or episode (truncated, corrupt, undecodable, missing), counts
and logs each skipped episode once per epoch, and never refills its frames with repeats of other episodes; a
local file is not retried as if it were a flaky bucket."""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.core.errors import ShardReadError
from lerobot_wds.reader.planning.topology import Topology
from lerobot_wds.testing.shards import RootSpec, garble_samples, make_root

SPEC = RootSpec(lengths=(5, 6, 4, 7, 8, 3), episodes_per_shard=1, cameras=("observation.images.c",))
TOTAL = sum(SPEC.lengths)
BAD = 2  # the damaged episode (in shard 2: one episode per shard)


@pytest.fixture(scope="module")
def good_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("skip_good")
    make_root(root, SPEC)
    return root


def _copy(good: Path, dst: Path) -> Path:
    shutil.copytree(good, dst)
    return dst


def _shard(root: Path) -> Path:
    return root / "shards" / f"shard-{BAD:06d}.tar"


def truncated(good: Path, dst: Path) -> Path:
    root = _copy(good, dst)
    data = _shard(root).read_bytes()
    _shard(root).write_bytes(data[: len(data) // 2])
    return root


def flipped(good: Path, dst: Path) -> Path:
    root = _copy(good, dst)
    data = bytearray(_shard(root).read_bytes())
    data[len(data) // 2] ^= 0xFF
    _shard(root).write_bytes(bytes(data))
    return root


def missing(good: Path, dst: Path) -> Path:
    root = _copy(good, dst)
    _shard(root).unlink()
    return root


def undecodable(good: Path, dst: Path) -> Path:
    """Garbled video samples whose digests the manifest records: only the decoder finds the fault."""

    def damage(name: str, data: bytes) -> bytes:
        return garble_samples(data) if name.startswith(f"episode_{BAD:06d}.") and name.endswith(".mp4") else data

    make_root(dst, SPEC, damage=damage)
    return dst


DAMAGE = {"truncated": truncated, "flipped": flipped, "missing": missing, "undecodable": undecodable}


def padding(ds: LeRobotWdsDataset, workers: int) -> int:
    """The repeats the ``uneven`` rule plans (pad: up to the largest reader's frames; trim: negative)."""
    n = max(1, workers)
    plans = [ds.plan(Topology(rank=0, world_size=1, worker=w, num_workers=n)) for w in range(n)]
    return sum(p.quota - p.frames for p in plans)


def read_all(ds: LeRobotWdsDataset, workers: int) -> list[int]:
    """Every delivered sample's (episode, frame) as its global index."""
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
    out: list[int] = []
    for item in loader:
        out += item["index"].reshape(-1).tolist()
    return out


@pytest.mark.parametrize("kind", sorted(DAMAGE))
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("uneven", ["pad", "trim"])
def test_skip_skips_every_kind_once_and_never_refills(
    good_root: Path, tmp_path: Path, kind: str, shuffle: bool, uneven: str
) -> None:
    root = DAMAGE[kind](good_root, tmp_path / kind)
    ds = LeRobotWdsDataset(str(root), batch_size=4, on_error="skip", shuffle=shuffle, uneven=uneven)
    delivered = read_all(ds, 0)
    assert len(delivered) == TOTAL - SPEC.lengths[BAD]  # no frame of another episode repeated to fill the gap
    assert Counter(delivered).most_common(1)[0][1] == 1
    start = sum(SPEC.lengths[:BAD])
    assert not set(range(start, start + SPEC.lengths[BAD])) & set(delivered)
    assert ds.stats()["skipped_episodes"] == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_truncated_local_shard_is_skipped_without_retries(good_root: Path, tmp_path: Path, workers: int) -> None:
    root = truncated(good_root, tmp_path / "t")
    ds = LeRobotWdsDataset(str(root), batch_size=4, on_error="skip", seed=3)
    delivered = read_all(ds, workers)
    stats = ds.stats()
    assert len(delivered) == TOTAL - SPEC.lengths[BAD] + padding(ds, workers)
    assert len(set(delivered)) == TOTAL - SPEC.lengths[BAD]
    assert stats["skipped_episodes"] == 1
    assert stats["read_retries"] == 0  # a file truncated at rest reads short every time: not retried
    assert "got " in stats["skip_messages"][0] and f"shard-{BAD:06d}.tar" in stats["skip_messages"][0]


def test_truncated_local_shard_fails_at_once_under_raise(good_root: Path, tmp_path: Path) -> None:
    root = truncated(good_root, tmp_path / "t")
    with pytest.raises(ShardReadError, match=rf"shard-{BAD:06d}\.tar: permanent error \(ShortReadError"):
        read_all(LeRobotWdsDataset(str(root), batch_size=4, shuffle=False), 0)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_episode_counted_once_across_epochs_and_workers(
    good_root: Path, tmp_path: Path, workers: int
) -> None:
    root = flipped(good_root, tmp_path / "f")
    ds = LeRobotWdsDataset(str(root), batch_size=2, on_error="skip", seed=1)
    for epoch in range(2):
        ds.set_epoch(epoch)
        delivered = read_all(ds, workers)
        assert len(delivered) == TOTAL - SPEC.lengths[BAD] + padding(ds, workers)
        assert len(set(delivered)) == TOTAL - SPEC.lengths[BAD]
        assert ds.stats()["skipped_episodes"] == 1  # per epoch: stats() describe the last iteration


def test_skip_is_logged_once(good_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Episode 0 fails; unshuffled, a pass that went on after it would meet it first again."""
    root = _copy(good_root, tmp_path / "f")
    shard = root / "shards" / "shard-000000.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    ds = LeRobotWdsDataset(str(root), batch_size=2, on_error="skip", shuffle=False)
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.on_error"):
        delivered = read_all(ds, 0)
    skips = [r for r in caplog.records if r.getMessage().startswith("skipping episode")]
    assert len(skips) == 1 and "episode 0 " in skips[0].getMessage()
    assert sorted(delivered) == list(range(SPEC.lengths[0], TOTAL))
