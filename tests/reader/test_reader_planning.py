"""Episode-granular planning end to end: any conversion feeds any number of readers, reads are checked.

Real converted roots (ffmpeg-encoded LeRobot v3 datasets through the converter with default options), real
DataLoader workers and a real 2-process torchrun (gloo); identity-coded frames where pixels matter.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from reader_torchrun_worker import run_ranks
from torch.utils.data import DataLoader

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import EpisodeExtent, ShardInfo
from lerobot_wds.reader.errors import IntegrityError
from lerobot_wds.reader.planning.reads import plan_reads
from lerobot_wds.reader.planning.splitting import EpisodeRef, Segment
from lerobot_wds.testing.synth import CAMS_3, LeRobotSpec, make_dataset

LENGTHS = (23, 31, 17, 40, 12, 28, 35, 19, 26, 33, 14, 37, 21, 29, 16, 38, 25, 30)  # 18 episodes, 494 frames


@pytest.fixture(scope="module")
def one_shard_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """18 episodes converted with default options: a single shard."""
    base = tmp_path_factory.mktemp("planning")
    spec = LeRobotSpec(codec="av1", cameras=CAMS_3[:2], episode_lengths=LENGTHS, fps=10)
    src = make_dataset(spec, base / "src")
    dest = base / "wds"
    # default shard size, source order: the checks below corrupt and name episodes by their place in the shard
    convert(ConvertConfig(source=str(src.root), dest=str(dest), order="source", progress=False))
    return dest


def _ids(batch: dict) -> list[tuple[int, int]]:
    return [(int(e), int(f)) for e, f in zip(batch["episode_index"], batch["frame_index"], strict=True)]


def test_default_conversion_is_one_shard_with_extents(one_shard_root: Path) -> None:
    manifest = json.loads((one_shard_root / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and len(manifest["shards"]) == 1
    (shard,) = manifest["shards"]
    assert [e["episode"] for e in shard["extents"]] == list(range(18))
    assert [e["frames"] for e in shard["extents"]] == list(LENGTHS)
    ends = [e["offset"] + e["length"] for e in shard["extents"]]
    assert [e["offset"] for e in shard["extents"]] == [0, *ends[:-1]]  # contiguous, in order


@pytest.mark.slow
def test_torchrun_two_ranks_two_workers_on_one_shard(one_shard_root: Path, tmp_path: Path) -> None:
    ranks = run_ranks(one_shard_root, tmp_path)
    every = {(e, k) for e, n in enumerate(LENGTHS) for k in range(n)}
    for epoch in range(2):
        per_rank = [[tuple(i) for i in r["epochs"][epoch]["ids"]] for r in ranks]
        assert len(per_rank[0]) == len(per_rank[1]) == ranks[0]["samples_per_rank"]
        counts = Counter(per_rank[0] + per_rank[1])
        assert set(counts) == every  # every frame seen
        repeats = sum(counts.values()) - len(every)
        assert repeats <= 0.03 * len(every), f"{repeats} repeats of {len(every)} frames"
        assert repeats <= 4  # 494 frames over 4 readers: at most one repeat per reader


def test_eight_workers_on_one_shard_every_frame_once(one_shard_root: Path) -> None:
    ds = LeRobotWdsDataset(str(one_shard_root), seed=4, return_uint8=True, batch_size=8)
    seen = Counter(i for b in DataLoader(ds, batch_size=None, num_workers=8) for i in _ids(b))
    every = {(e, k) for e, n in enumerate(LENGTHS) for k in range(n)}
    assert set(seen) == every and sum(seen.values()) == ds.samples_per_rank(8) <= len(every) + 8
    assert max(seen.values()) <= 2


def _flip_video_byte(root: Path, episode: int) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    shard = manifest["shards"][0]
    ext = shard["extents"][episode]
    path = root / shard["path"]
    data = bytearray(path.read_bytes())
    data[ext["offset"] + ext["length"] - 700] ^= 0x01  # inside the last member (a mini-MP4 payload)
    path.write_bytes(bytes(data))


def test_corrupt_byte_is_reported_by_default(one_shard_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "bad"
    shutil.copytree(one_shard_root, root)
    _flip_video_byte(root, 5)
    with pytest.raises(IntegrityError, match=r"shard .*shard-000000\.tar, episode 5 \(bytes \d+\.\.\d+\): sha256"):
        list(LeRobotWdsDataset(str(root), shuffle=False))
    ds = LeRobotWdsDataset(str(root), shuffle=False, on_error="skip")
    got = {(int(s["episode_index"]), int(s["frame_index"])) for s in ds}
    assert {e for e, _ in got} == set(range(18)) - {5} and ds.stats()["skipped_episodes"] == 1


def test_a_v1_manifest_is_refused_with_a_request_to_reconvert(one_shard_root: Path, tmp_path: Path) -> None:
    """Version 1 manifests (no per-episode extents) came only from this project's early versions."""
    root = tmp_path / "v1"
    shutil.copytree(one_shard_root, root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format_version"] = 1
    for shard in manifest["shards"]:
        del shard["extents"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError) as got:
        LeRobotWdsDataset(str(root))
    assert str(got.value) == (
        f"{root}/manifest.json: format_version 1 (no per-episode extents) was written by an early lerobot-wds "
        "version this reader no longer reads; re-convert the source with this version (format_version 2)"
    )
    manifest["format_version"] = 2  # a version 2 manifest must list every shard's extents
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatError, match=r"manifest\.json: missing or unexpected field: .*extents"):
        LeRobotWdsDataset(str(root))


def test_a_state_taken_without_reading_resumes_elsewhere_only_with_a_clear_error(one_shard_root: Path) -> None:
    ds = LeRobotWdsDataset(str(one_shard_root), seed=2)
    state = ds.loader_state_dict(batches_seen=3, batch_size=4, num_workers=2)  # this process read nothing
    other = LeRobotWdsDataset(str(one_shard_root), seed=2)
    other.load_state_dict(state)
    with pytest.raises(
        ValueError,
        match="epoch 0 of 1 ranks x 2 workers on 1 x 1: the states of rank 0 reader 0, rank 0 reader 1 ",
    ):
        next(iter(other))


def _shard(path: str, sizes: list[int], first: int = 0) -> ShardInfo:
    extents, off = [], 0
    for i, n in enumerate(sizes):
        extents.append(EpisodeExtent(first + i, 10, off, n, f"{i:064x}"))
        off += n
    return ShardInfo(path, off + 1024, "0" * 64, [e.episode for e in extents], 10 * len(sizes), extents)


def _segments(shard: ShardInfo, positions: list[int]) -> list[Segment]:
    return [Segment(EpisodeRef(shard.path, shard.episodes[p], 10, p), 0, 10) for p in positions]


def test_plan_reads_whole_shard_ranges_first_split_and_cap() -> None:
    a, b = _shard("shards/a.tar", [100, 200, 300, 400]), _shard("shards/b.tar", [50, 60], first=4)
    shards = {a.path: a, b.path: b}
    reads = plan_reads(
        _segments(a, [0, 1, 2, 3]) + _segments(b, [1]), shards, "root", max_bytes=10**6, split_first=False
    )
    assert [(r.url, r.start, r.end, r.episodes) for r in reads] == [
        ("root/shards/a.tar", None, None, (0, 1, 2, 3)),  # the whole shard: one GET
        ("root/shards/b.tar", 50, 110, (5,)),  # one episode of b: its byte range
    ]
    reads = plan_reads(_segments(a, [1, 2, 3]), shards, "root", max_bytes=10**6, split_first=True)
    assert [(r.start, r.end, r.episodes) for r in reads] == [(100, 300, (1,)), (300, 1000, (2, 3))]
    many = _shard("shards/m.tar", [10] * 20)
    reads = plan_reads(
        _segments(many, list(range(20))), {many.path: many}, "root", max_bytes=10**6, split_first=True
    )
    assert [len(r.episodes) for r in reads] == [1, 2, 4, 8, 5]  # growing first reads, then up to max_bytes
    reads = plan_reads(_segments(a, [0, 1, 2, 3]), shards, "root", max_bytes=500, split_first=False)
    assert [(r.start, r.end) for r in reads] == [(0, 300), (300, 600), (600, 1000)]  # cut at episode boundaries
    assert all(r.nbytes <= 500 or len(r.episodes) == 1 for r in reads)


def test_integrity_can_be_turned_off_explicitly(one_shard_root: Path, tmp_path: Path) -> None:
    from lerobot_wds.reader.fetching.fetch import StreamConfig

    root = tmp_path / "bad"
    shutil.copytree(one_shard_root, root)
    _flip_video_byte(root, 5)
    ds = LeRobotWdsDataset(str(root), shuffle=False, stream=StreamConfig(verify_sha256=False), return_uint8=True)
    n = 0
    for s in ds:  # the flipped byte may or may not change pixels; it is no longer checked
        n += 1
        assert isinstance(s["observation.state"], torch.Tensor)
    assert n == sum(LENGTHS)
