"""Seeded corruption end to end: damaged source MP4s through ``convert``, damaged shards through ``verify`` and
a reader epoch. Nothing ends in a traceback or hangs (every subprocess has a timeout), and nothing corrupted
is accepted as good.

- Source: one camera file of the small LeRobot fixture gets moov bytes flipped, a sample-table count
  overwritten, sample data flipped or the file truncated (``random.Random(seed)``); ``lerobot-wds convert
  --on-error skip`` exits 0 having recorded every episode it could not cut (reason naming the camera file)
  and written shards that ``verify`` passes, or exits 1 with one line naming the file; never a traceback.
- Shards: bytes flipped in a shard of a converted root; ``lerobot-wds verify`` exits 1 naming the shard and
  every episode whose extent holds a flipped byte; a reader epoch (integrity on by default) raises
  IntegrityError naming shard and episode before yielding any frame of a damaged episode, and with
  ``on_error="skip"`` yields only frames of undamaged episodes, each one the frame it claims to be.

Seeds: ``LEROBOT_WDS_CORRUPTION_SEEDS`` per scenario (default 6; ``make fuzz`` runs 60).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.core.format import MANIFEST_NAME, Manifest
from lerobot_wds.reader.dataset import LeRobotWdsDataset
from lerobot_wds.reader.errors import IntegrityError
from lerobot_wds.reader.fetching.fetch import StreamConfig
from lerobot_wds.testing.synth_identity import read_identity

SCRIPT = Path(sys.executable).with_name("lerobot-wds")
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "lerobot_wds.tools.cli"]
SEEDS = range(int(os.environ.get("LEROBOT_WDS_CORRUPTION_SEEDS", "6")))
TIMEOUT_S = 120
TABLES = (b"stsz", b"stco", b"stts", b"stss", b"stsc", b"ctts")
CAMERAS = ("observation.images.front", "observation.images.wrist")


def run(*args: str) -> subprocess.CompletedProcess:
    """Runs the CLI; a hang fails the test through the timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=TIMEOUT_S)
    assert proc.returncode in (0, 1, 2), (args, proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-4000:]
    return proc


def corrupt_mp4(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded corruption of an MP4 file: its kind and the damaged bytes."""
    kind = rng.choice(["moov_bytes", "table_count", "sample_bytes", "truncate"])
    buf = bytearray(data)
    moov = data.index(b"moov") - 4
    (moov_size,) = struct.unpack_from(">I", data, moov)
    mdat = data.index(b"mdat") - 4
    if kind == "moov_bytes":
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(moov, moov + moov_size)] ^= 1 << rng.randrange(8)
    elif kind == "table_count":
        typ = rng.choice([t for t in TABLES if t in data[moov : moov + moov_size]])
        at = data.index(typ, moov) + 4 + 4 + (4 if typ == b"stsz" else 0)  # after version/flags (+ sample size)
        struct.pack_into(">I", buf, at, rng.choice([0, 1, 2**31, 2**32 - 1, rng.randrange(2**32)]))
    elif kind == "sample_bytes":
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(mdat + 8, len(data))] = rng.randrange(256)
    else:
        del buf[rng.randrange(len(data)) :]
    return kind, bytes(buf)


@pytest.mark.parametrize("seed", SEEDS)
def test_corrupt_source_mp4_through_convert(small_lerobot_dataset, tmp_path, seed):
    rng = random.Random(seed)
    src = Path(shutil.copytree(small_lerobot_dataset.root, tmp_path / "src"))
    camera = rng.choice(CAMERAS)
    rel = f"videos/{camera}/chunk-000/file-000.mp4"
    kind, damaged = corrupt_mp4((src / rel).read_bytes(), rng)
    (src / rel).write_bytes(damaged)
    dest = tmp_path / "dest"
    proc = run("convert", str(src), str(dest), "--on-error", "skip", "--shard-size", "50000", "--no-progress")
    if proc.returncode == 0:
        manifest = Manifest.from_json_bytes((dest / MANIFEST_NAME).read_bytes())
        converted = sorted(e for s in manifest.shards for e in s.episodes)
        skipped = sorted(s["episode_index"] for s in manifest.skipped)
        assert sorted(converted + skipped) == [0, 1, 2, 3], (kind, converted, skipped)
        for s in manifest.skipped:
            assert camera in s["reason"] and "file-000.mp4" in s["reason"], (kind, s)
        assert kind in ("moov_bytes", "table_count", "sample_bytes") or skipped, (kind, "truncation unnoticed")
        if converted:
            check = run("verify", str(dest))
            assert check.returncode == 0, (kind, check.stdout[-2000:], check.stderr[-2000:])
        if skipped:  # without --on-error skip the same input stops the run, naming the episode and the file
            stop = run("convert", str(src), str(tmp_path / "dest_raise"), "--shard-size", "50000", "--no-progress")
            last = stop.stderr.strip().splitlines()[-1]
            # the first bad episode in conversion order (seeded shuffle) stops the run: one of the skipped ones
            named = any(f"episode {e}:" in last for e in skipped)
            assert stop.returncode == 1 and named and rel in last, (kind, last)
            assert not (tmp_path / "dest_raise" / MANIFEST_NAME).exists()
    else:
        assert proc.returncode == 1, (kind, proc.returncode, proc.stderr[-2000:])
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("lerobot-wds convert: error: ") and rel in last, (kind, last)
        assert not (dest / MANIFEST_NAME).exists()


@pytest.fixture(scope="module")
def converted_root(small_lerobot_dataset, tmp_path_factory) -> Path:
    """The small fixture converted: shard 0 holds episodes 0, 1, 2; shard 1 episode 3 (v2 extents)."""
    dest = tmp_path_factory.mktemp("corruption_e2e") / "root"
    convert(
        ConvertConfig(
            str(small_lerobot_dataset.root), str(dest), target_shard_bytes=50_000, order="source", progress=False
        )
    )
    return dest


def damage_shard(root: Path, rng: random.Random) -> tuple[str, set[int]]:
    """Flips 1-4 seeded bytes in one shard; returns its path and the episodes whose extents hold them."""
    manifest = Manifest.from_json_bytes((root / MANIFEST_NAME).read_bytes())
    info = rng.choice(manifest.shards)
    path = root / info.path
    buf = bytearray(path.read_bytes())
    hit: set[int] = set()
    covered = info.extents[-1].offset + info.extents[-1].length
    for _ in range(rng.randint(1, 4)):
        # mostly inside the episodes' bytes, sometimes in the end-of-archive blocks after them
        pos = rng.randrange(covered) if rng.random() < 0.9 else rng.randrange(covered, len(buf))
        buf[pos] ^= 1 << rng.randrange(8)
        hit |= {e.episode for e in info.extents if e.offset <= pos < e.offset + e.length}
    path.write_bytes(bytes(buf))
    return info.path, hit


def _epoch(root: Path, on_error: str) -> tuple[list[tuple[int, int]], LeRobotWdsDataset]:
    """Iterates one epoch in-process; returns (episode, frame) of every sample after checking its images."""
    ds = LeRobotWdsDataset(
        str(root),
        preset="single",
        shuffle=False,
        on_error=on_error,
        stream=StreamConfig(retries=0),
        rank=0,
        world_size=1,
    )
    seen = []
    for sample in ds:
        ep, frame = int(sample["episode_index"]), int(sample["frame_index"])
        for cam in CAMERAS:  # each image carries its identity: a frame is good only if it is the one claimed
            assert read_identity(sample[cam]) == (ep, frame), (cam, ep, frame)
        seen.append((ep, frame))
    return seen, ds


@pytest.mark.parametrize("seed", SEEDS)
def test_corrupt_shard_through_verify_and_reader(converted_root, tmp_path, seed):
    root = Path(shutil.copytree(converted_root, tmp_path / "root"))
    shard, hit = damage_shard(root, random.Random(seed))

    proc = run("verify", str(root), "--json")
    assert proc.returncode == 1, (proc.stdout[-2000:], proc.stderr[-2000:])
    findings = json.loads(proc.stdout)["findings"]
    assert {f["shard"] for f in findings} == {shard}
    assert "sha256" in {f["check"] for f in findings}
    assert {f["episode"] for f in findings if f["check"] == "extent-sha256"} == hit

    if hit:
        seen: list[tuple[int, int]] = []
        with pytest.raises(IntegrityError, match=f"shard .*{shard}, episode {min(hit)} .*sha256") as info:
            for sample in LeRobotWdsDataset(
                str(root), preset="single", shuffle=False, stream=StreamConfig(retries=0), rank=0, world_size=1
            ):
                seen.append((int(sample["episode_index"]), int(sample["frame_index"])))
        assert not {ep for ep, _ in seen} & hit, info.value
    seen, ds = _epoch(root, "skip")
    assert seen and not {ep for ep, _ in seen} & hit
    assert (ds.stats().get("skipped_episodes", 0) > 0) == bool(hit)
