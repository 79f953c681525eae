"""Bad data and remote sources: errors name the shard / member / camera; on_error="skip" skips and counts;
shards are read over a real loopback HTTP server (with injected faults) and moto's S3 server."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.core.errors import FormatError, ShardReadError
from lerobot_wds.reader.errors import FrameDecodeError, IntegrityError, ShardFormatError
from lerobot_wds.reader.fetching.fetch import StreamConfig
from lerobot_wds.testing.shards import RootSpec, make_root, read_identity

SPEC = RootSpec(lengths=(5, 6, 4, 7), episodes_per_shard=2, cameras=("observation.images.c",))
NO_RETRY = StreamConfig(retries=0)
NO_CHECK = StreamConfig(verify_sha256=False)  # reach the structural checks behind the integrity check


def _integrity_catches(root: Path, shard: str, episode: int) -> None:
    """By default the manifest's digest of the damaged episode rejects it before any parsing."""
    with pytest.raises(
        IntegrityError, match=rf"{shard}, episode {episode} \(bytes \d+\.\.\d+\): sha256 [0-9a-f]+, manifest says"
    ):
        list(LeRobotWdsDataset(str(root), shuffle=False))


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small_root")
    make_root(root, SPEC)
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _member_offset(tar_path: Path, name: str) -> tuple[int, int]:
    """Returns (header offset, data offset) of a tar member."""
    with tarfile.open(tar_path) as tar:
        info = tar.getmember(name)
        return info.offset, info.offset_data


def _extents(tar_path: Path, old: list[dict]) -> list[dict]:
    """The manifest extents of a rewritten shard: each episode's members' bytes (headers, data, padding)."""
    spans: dict[int, tuple[int, int]] = {}
    with tarfile.open(tar_path) as tar:
        for info in tar.getmembers():
            episode = int(info.name.split(".")[0].removeprefix("episode_"))
            end = info.offset_data + -(-info.size // 512) * 512
            lo, _ = spans.get(episode, (info.offset, end))
            spans[episode] = (lo, end)
    data = tar_path.read_bytes()
    return [
        {**e, "offset": lo, "length": hi - lo, "sha256": hashlib.sha256(data[lo:hi]).hexdigest()}
        for e, (lo, hi) in zip(old, spans.values(), strict=True)
    ]


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_truncated_shard_names_the_shard(small_root: Path, tmp_path: Path) -> None:
    root = _copy(small_root, tmp_path / "r")
    shard = root / "shards" / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    ds = LeRobotWdsDataset(str(root), shuffle=False, stream=NO_RETRY)
    with pytest.raises(ShardReadError, match=r"shard-000001\.tar 0\.\.\d+: got 3000 bytes, expected \d+"):
        list(ds)


def test_corrupt_tar_header_names_the_shard_and_skip_counts(small_root: Path, tmp_path: Path) -> None:
    root = _copy(small_root, tmp_path / "r")
    shard = root / "shards" / "shard-000000.tar"
    header, _ = _member_offset(shard, "episode_000001.json")
    _overwrite(shard, header, b"\xff" * 512)
    msg = r"shard-000000\.tar: corrupt tar: bad checksum"  # episode 1's bytes, parsed on their own
    _integrity_catches(root, r"shard-000000\.tar", 1)
    with pytest.raises(ShardFormatError, match=msg):
        list(LeRobotWdsDataset(str(root), stream=NO_CHECK, shuffle=False))
    ds = LeRobotWdsDataset(str(root), stream=NO_CHECK, shuffle=False, on_error="skip")
    got = [(int(s["episode_index"]), int(s["frame_index"])) for s in ds]
    assert len(got) == len(set(got)) == sum(SPEC.lengths) - SPEC.lengths[1]  # not refilled with repeats
    assert 1 not in {e for e, _ in got}
    assert ds.stats()["skipped_episodes"] == 1 and ds.stats()["skipped_shards"] == 0


def test_corrupt_parquet_member_names_member(small_root: Path, tmp_path: Path) -> None:
    root = _copy(small_root, tmp_path / "r")
    shard = root / "shards" / "shard-000001.tar"
    _, data = _member_offset(shard, "episode_000002.parquet")
    _overwrite(shard, data, b"garbage!" * 8)
    _integrity_catches(root, r"shard-000001\.tar", 2)
    with pytest.raises(ShardFormatError, match=r"sample episode_000002, member episode_000002\.parquet"):
        list(LeRobotWdsDataset(str(root), stream=NO_CHECK, shuffle=False))
    ds = LeRobotWdsDataset(str(root), stream=NO_CHECK, shuffle=False, on_error="skip")
    episodes = {int(s["episode_index"]) for s in ds}
    assert episodes == {0, 1, 3} and ds.stats()["skipped_episodes"] >= 1


def test_corrupt_video_member_names_camera(small_root: Path, tmp_path: Path) -> None:
    root = _copy(small_root, tmp_path / "r")
    shard = root / "shards" / "shard-000001.tar"
    _, data = _member_offset(shard, "episode_000003.observation.images.c.mp4")
    _overwrite(shard, data, b"\x00" * 64)  # destroys the ftyp/moov boxes
    _integrity_catches(root, r"shard-000001\.tar", 3)
    with pytest.raises(FrameDecodeError, match=r"sample episode_000003, camera observation\.images\.c"):
        list(LeRobotWdsDataset(str(root), stream=NO_CHECK, shuffle=False))
    ds = LeRobotWdsDataset(str(root), stream=NO_CHECK, shuffle=False, on_error="skip")
    samples = list(ds)
    assert {int(s["episode_index"]) for s in samples} == {0, 1, 2}
    assert len(samples) == sum(SPEC.lengths) - SPEC.lengths[3]  # the skipped episode's frames are not refilled
    for s in samples:
        assert read_identity(s["observation.images.c"])[:2] == (int(s["episode_index"]), int(s["frame_index"]))


def test_missing_member_and_bad_manifest(small_root: Path, tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"is not a converted root \(no manifest.json\)"):
        LeRobotWdsDataset(str(tmp_path))
    src = small_root / "shards" / "shard-000000.tar"
    root = _copy(small_root, tmp_path / "r")
    dst = root / "shards" / "shard-000000.tar"
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as tout:
        for info in tin.getmembers():
            if info.name != "episode_000000.observation.images.c.mp4":
                tout.addfile(info, tin.extractfile(info))
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shards"][0]["bytes"] = dst.stat().st_size  # a converter bug, not a transport one
    manifest["shards"][0]["sha256"] = hashlib.sha256(dst.read_bytes()).hexdigest()
    manifest["shards"][0]["extents"] = _extents(dst, manifest["shards"][0]["extents"])
    (root / "manifest.json").write_text(json.dumps(manifest))
    ds = LeRobotWdsDataset(str(root), shuffle=False)
    msg = r"sample episode_000000, member episode_000000\.observation\.images\.c\.mp4: required member is absent"
    with pytest.raises(ShardFormatError, match=msg + r" \(found \['episode_000000\.json'"):
        list(ds)


def test_reads_over_loopback_http_with_retry(small_root: Path, http_dir_server) -> None:
    server = http_dir_server(small_root)
    server.inject_fault("/shards/shard-000001.tar", fail_requests=1)
    ds = LeRobotWdsDataset(server.url, shuffle=False, stream=StreamConfig(retries=2, backoff_s=0.01))
    got = [(int(s["episode_index"]), int(s["frame_index"])) for s in ds]
    assert got == [(e, k) for e, n in enumerate(SPEC.lengths) for k in range(n)]
    stats = server.stats()
    assert stats.faults_served == 1
    assert len([r for r in stats.log if r.path.endswith("shard-000001.tar") and r.method == "GET"]) >= 2


def test_reads_from_moto_s3(small_root: Path, s3_bucket) -> None:
    s3_bucket.fs.put(str(small_root), s3_bucket.url("root"), recursive=True)
    ds = LeRobotWdsDataset(s3_bucket.url("root"), seed=1, stream=StreamConfig(storage_options=s3_bucket.options))
    got = sorted((int(s["episode_index"]), int(s["frame_index"])) for s in ds)
    assert got == [(e, k) for e, n in enumerate(SPEC.lengths) for k in range(n)]
