"""The node-local cache (:mod:`cache`, :mod:`cached`): real files, real processes, the loopback HTTP server.

Entries are content-addressed by sha256; a partial file never carries a final name; the bound holds with
writers in several processes; a writer killed with ``kill -9`` leaves nothing a later run would serve.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.core.format import Manifest
from lerobot_wds.reader.errors import OptionError
from lerobot_wds.reader.fetching.cache import CacheConfig, NodeCache, disk_bytes
from lerobot_wds.reader.planning.topology import Topology
from lerobot_wds.testing.shards import read_identity


def _blob(i: int, n: int) -> tuple[str, bytes]:
    data = (f"entry {i} ".encode() * (n // 8 + 1))[:n]
    return hashlib.sha256(data).hexdigest(), data


def _disk(root: Path) -> int:
    """Bytes of entries and temp files, sampled under the cache's lock (a consistent count)."""
    return disk_bytes(root) if (root / "entries").is_dir() else 0


def _read_checking_identity(ds: LeRobotWdsDataset) -> set[tuple[int, int]]:
    """Reads an epoch of batches, checks every frame's decoded identity, returns the (episode, frame) pairs."""
    seen = set()
    for batch in ds:
        cams, eps, idxs = batch[ds.camera_keys[0]], batch["episode_index"], batch["frame_index"]
        for image, ep, idx in zip(cams, eps, idxs, strict=True):
            assert read_identity(image)[:2] == (int(ep), int(idx))
            seen.add((int(ep), int(idx)))
    return seen


def test_lru_eviction_keeps_the_bound_and_the_share(tmp_path: Path) -> None:
    blobs = [_blob(i, 1000) for i in range(6)]
    cache = NodeCache(CacheConfig(str(tmp_path), 3500))
    for digest, data in blobs[:3]:
        assert cache.put(digest, data)
    assert cache.get(blobs[0][0]) == blobs[0][1]  # entry 0 is now the most recently used
    assert cache.put(*blobs[3])  # 4000 > 3500: evicts the least recently used (1) down to 90% of the limit
    assert sorted(os.listdir(tmp_path / "entries")) == sorted([blobs[i][0] for i in (0, 2, 3)])
    assert cache.evictions == 1 and cache.size() == 3000 == _disk(tmp_path)
    assert cache.get(blobs[1][0]) is None
    assert not cache.put(blobs[4][0], blobs[5][1])  # bytes that do not hash to their name are never stored
    # entries of the node's share are never evicted for another entry: a share larger than the cache keeps its part
    keep = frozenset(blobs[i][0] for i in (0, 2, 3))
    shared = NodeCache(CacheConfig(str(tmp_path), 3500, keep=keep))
    assert not shared.put(*blobs[4])
    assert shared.evictions == 0 and sorted(os.listdir(tmp_path / "entries")) == sorted(keep)
    assert shared.put(*_blob(9, 400)) and shared.size() == 3400 <= 3500
    with pytest.raises(OptionError, match="cache_limit=0"):
        CacheConfig(str(tmp_path), 0)


def _fill(directory: str, limit: int, order: list[int], out: Any) -> None:
    cache = NodeCache(CacheConfig(directory, limit))
    written = [i for i in order if cache.put(*_blob(i, 20_000))]
    out.put(written)


@pytest.mark.parametrize("limit", [10**7, 150_000])
def test_two_processes_filling_one_cache_write_each_entry_once_under_the_bound(tmp_path: Path, limit: int) -> None:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    n = 40
    procs = [
        ctx.Process(target=_fill, args=(str(tmp_path), limit, order, out))
        for order in (list(range(n)), list(reversed(range(n))))
    ]
    for p in procs:
        p.start()
    peak = 0
    while any(p.is_alive() for p in procs):
        peak = max(peak, _disk(tmp_path))
    written = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    entries = os.listdir(tmp_path / "entries")
    assert not os.listdir(tmp_path / "tmp") and peak <= limit
    if limit >= n * 20_000:  # everything fits: each entry written by exactly one of the two processes
        assert sorted(written[0] + written[1]) == list(range(n))
        assert sorted(entries) == sorted(_blob(i, 20_000)[0] for i in range(n))
    else:
        assert len(entries) * 20_000 <= limit
    for name in entries:
        assert hashlib.sha256((tmp_path / "entries" / name).read_bytes()).hexdigest() == name
    assert NodeCache(CacheConfig(str(tmp_path), limit)).size() == len(entries) * 20_000 == _disk(tmp_path)


def _episode_bytes(root: Path, manifest: Manifest) -> dict[int, tuple[str, bytes]]:
    out = {}
    for shard in manifest.shards:
        data = (root / shard.path).read_bytes()
        for e in shard.extents:
            out[e.episode] = (e.sha256, data[e.offset : e.offset + e.length])
    return out


def _write_then_hang(directory: str, pieces: list[tuple[str, bytes]], big: int) -> None:
    cache = NodeCache(CacheConfig(directory, 10**9))
    for digest, data in pieces:
        cache.put(digest, data)
    digest, data = _blob(99, big)
    while True:  # keeps writing a large entry until killed
        cache.put(digest, data)
        cache.discard(digest)


def test_a_writer_killed_mid_write_leaves_only_complete_entries(
    wds_root: Path, tmp_path: Path, http_dir_server: Callable[..., Any]
) -> None:
    manifest = Manifest.from_json_bytes((wds_root / "manifest.json").read_bytes(), where="manifest.json")
    episodes = _episode_bytes(wds_root, manifest)
    done = [episodes[e] for e in sorted(episodes)[:4]]
    ctx = multiprocessing.get_context("fork")
    cache_dir = tmp_path / "cache"
    big = 64 * 2**20
    writer = ctx.Process(target=_write_then_hang, args=(str(cache_dir), done, big))
    writer.start()
    big_digest = _blob(99, big)[0]
    partial = None
    while partial is None:  # kill it while the large entry's temp file is being written (reserved, not complete)
        for p in (cache_dir / "tmp").glob(f"{big_digest}.*") if (cache_dir / "tmp").exists() else []:
            try:
                size = p.stat().st_size
            except FileNotFoundError:
                continue
            if 0 < size < big:
                os.kill(writer.pid, signal.SIGKILL)
                partial = p
    writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL
    assert partial.exists() and partial.stat().st_size < big  # a partial file, under a temp name only
    assert sorted(os.listdir(cache_dir / "entries")) == sorted(d for d, _ in done)

    server = http_dir_server(wds_root)
    ds = LeRobotWdsDataset(server.url, batch_size=4, shuffle=False, cache_dir=str(cache_dir), cache_limit=10**9)
    seen = []
    for batch in ds:  # every byte checked against the manifest, every frame decoded to its identity
        for image, ep, idx in zip(
            batch[ds.camera_keys[0]], batch["episode_index"], batch["frame_index"], strict=True
        ):
            assert read_identity(image)[:2] == (int(ep), int(idx))
            seen.append((int(ep), int(idx)))
    assert len(seen) == len(set(seen)) == manifest.total_frames
    st = ds.stats()
    missing = sorted(episodes)[4:]
    assert st["cache"]["hits"] == 4 and st["cache"]["misses"] == len(missing)  # complete entries reused
    assert (
        st["remote_bytes"]
        == sum(len(episodes[e][1]) for e in missing)
        == server.stats().bytes_sent - _meta_bytes(wds_root)
    )
    assert not partial.exists()  # discarded when the cache was opened; its reservation with it
    assert st["cache"]["size"] == sum(len(d) for _, d in episodes.values()) == _disk(cache_dir)


def _meta_bytes(root: Path) -> int:
    return (root / "manifest.json").stat().st_size + (root / "meta" / "tasks.parquet").stat().st_size


def test_nodes_keep_their_episodes_and_warm_epochs_read_no_remote_byte(
    wds_root: Path, tmp_path: Path, http_dir_server: Callable[..., Any]
) -> None:
    server = http_dir_server(wds_root)
    manifest = Manifest.from_json_bytes((wds_root / "manifest.json").read_bytes(), where="manifest.json")
    lengths = {e.episode: e.length for s in manifest.shards for e in s.extents}
    per_node: dict[int, list[list[tuple[int, int]]]] = {0: [], 1: []}
    for node in (0, 1):
        ds = LeRobotWdsDataset(
            server.url,
            batch_size=3,
            rank=node,
            world_size=2,
            ranks_per_node=1,
            cache_dir=str(tmp_path / f"node{node}"),
            cache_limit=10**8,
        )
        for epoch in range(3):
            ds.set_epoch(epoch)
            order = [
                (int(e), int(f)) for b in ds for e, f in zip(b["episode_index"], b["frame_index"], strict=True)
            ]
            per_node[node].append(order)
            st = ds.stats()
            share = {e for e, _ in order}
            if epoch == 0:
                assert st["remote_bytes"] == sum(lengths[e] for e in share)  # each episode fetched once
                assert st["cache"]["misses"] == len(share) and st["cache"]["hits"] == 0
            else:
                assert st["remote_bytes"] == 0  # a warm epoch reads the node's share from its cache only
                assert st["cache"]["hits"] == len(share) and st["cache"]["misses"] == 0
                assert st["cache"]["read_bytes"] == sum(lengths[e] for e in share)
            assert st["cache"]["size"] == sum(lengths[e] for e in share)
    for node in (0, 1):
        epochs = per_node[node]
        assert all(sorted(set(o)) == sorted(set(epochs[0])) for o in epochs)  # the same anchors every epoch
        assert len({tuple(o) for o in epochs}) == 3  # in a new order every epoch
    everything = set(per_node[0][0]) | set(per_node[1][0])
    assert len(everything) == manifest.total_frames and not set(per_node[0][0]) & set(per_node[1][0])


def test_cache_options_are_checked(wds_root: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="needs both a directory"):
        LeRobotWdsDataset(str(wds_root), cache_dir=str(tmp_path))
    with pytest.raises(OptionError, match=r"cache_limit=-1 \(int\); expected an integer >= 1"):
        LeRobotWdsDataset(str(wds_root), cache_dir=str(tmp_path), cache_limit=-1)
    with pytest.raises(OptionError, match="ranks_per_node=3 does not divide the world size 2"):
        LeRobotWdsDataset(
            str(wds_root), cache_dir=str(tmp_path), cache_limit=10, rank=0, world_size=2, ranks_per_node=3
        ).plan(Topology(0, 2, 0, 1))


def test_s3_root_through_the_cache_with_forked_workers(wds_root: Path, tmp_path: Path, s3_bucket: Any) -> None:
    """Over the S3-compatible test server, 2 forked workers per epoch: the cold epoch fetches every episode once,
    the warm one reads them all from the cache."""
    from torch.utils.data import DataLoader

    from lerobot_wds.reader.fetching.fetch import StreamConfig

    s3_bucket.fs.put(str(wds_root), s3_bucket.url("root"), recursive=True)
    manifest = Manifest.from_json_bytes((wds_root / "manifest.json").read_bytes(), where="manifest.json")
    episode_bytes = sum(e.length for s in manifest.shards for e in s.extents)
    ds = LeRobotWdsDataset(
        s3_bucket.url("root"),
        batch_size=4,
        stream=StreamConfig(storage_options=s3_bucket.options),
        cache_dir=str(tmp_path / "cache"),
        cache_limit=10**8,
    )
    counted = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
        frames = {
            (int(e), int(f)) for b in loader for e, f in zip(b["episode_index"], b["frame_index"], strict=True)
        }
        assert len(frames) == manifest.total_frames
        counted.append(ds.stats())
    cold, warm = counted
    # an episode split between the two workers is fetched by the first that misses it: at most once more
    assert (
        episode_bytes
        <= cold["remote_bytes"]
        <= episode_bytes + max(e.length for s in manifest.shards for e in s.extents)
    )
    assert cold["cache"]["size"] == episode_bytes == _disk(tmp_path / "cache")
    assert warm["remote_bytes"] == 0 and warm["cache"]["misses"] == 0


def test_a_cache_disk_that_fails_never_fails_a_read(
    wds_root: Path, tmp_path: Path, http_dir_server: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = http_dir_server(wds_root)
    manifest = Manifest.from_json_bytes((wds_root / "manifest.json").read_bytes(), where="manifest.json")
    cache_dir = tmp_path / "cache"
    ds = LeRobotWdsDataset(server.url, batch_size=4, shuffle=False, cache_dir=str(cache_dir), cache_limit=10**8)
    (cache_dir / "tmp").rmdir()
    (cache_dir / "tmp").write_text("a file where the cache's temp folder was: every store now fails")
    seen = _read_checking_identity(ds)
    assert len(seen) == manifest.total_frames
    st = ds.stats()
    assert (
        st["remote_bytes"] == sum(e.length for s in manifest.shards for e in s.extents)
        and st["cache"]["size"] == 0
    )
    assert "node-local cache: storing an entry failed" in caplog.text
    with pytest.raises(OptionError, match="cannot create the cache there"):
        LeRobotWdsDataset(server.url, cache_dir=str(cache_dir / "tmp" / "below-a-file"), cache_limit=10**8)


def test_a_damaged_entry_is_never_served_and_is_fetched_again(
    wds_root: Path, tmp_path: Path, http_dir_server: Callable[..., Any]
) -> None:
    server = http_dir_server(wds_root)
    manifest = Manifest.from_json_bytes((wds_root / "manifest.json").read_bytes(), where="manifest.json")
    cache_dir = tmp_path / "cache"
    ds = LeRobotWdsDataset(server.url, batch_size=4, shuffle=False, cache_dir=str(cache_dir), cache_limit=10**8)
    for _ in ds:
        pass
    victim = manifest.shards[1].extents[0]
    entry = cache_dir / "entries" / victim.sha256
    good = entry.read_bytes()
    entry.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])  # one flipped byte, same length
    seen = _read_checking_identity(ds)
    assert len(seen) == manifest.total_frames
    st = ds.stats()
    assert st["cache"]["misses"] == 1 and st["remote_bytes"] == victim.length  # only the damaged episode
    assert entry.read_bytes() == good  # stored again, intact
