"""A mini-MP4 that opens but cannot be decoded, read by DataLoader workers: the error that reaches the main
process is ours and names shard, episode and camera; ``on_error="skip"`` drops exactly that episode and the
main process's ``stats()`` counts it (workers report through the dataset's shared reader board)."""

from __future__ import annotations

import copy
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import lerobot_wds
from lerobot_wds import LeRobotWdsDataset, LeRobotWdsError
from lerobot_wds.core.format import episode_key, video_suffix
from lerobot_wds.reader.board import TEXT_BYTES, ReaderBoard
from lerobot_wds.reader.errors import FrameDecodeError
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.testing.shards import RootSpec, garble_samples, make_root, read_identity

# Two shards of 18 frames: with 2 workers each reads one whole shard (quota 18, no padding).
SPEC = RootSpec(lengths=(5, 6, 7, 7, 5, 6), episodes_per_shard=3)
BAD_EPISODE, BAD_CAMERA = 3, "observation.images.wrist"  # in shard 1, read by one worker alone
WORKERS = 2


@pytest.fixture(scope="module")
def garbled_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Episode 3's wrist mini-MP4 keeps its boxes and tables, every sample's bytes are 0xFF; the manifest's
    sizes and digests are those of the damaged shard, so only decoding can fail."""
    member = f"{episode_key(BAD_EPISODE)}.{video_suffix(BAD_CAMERA)}"
    root = tmp_path_factory.mktemp("garbled_root")
    make_root(root, SPEC, damage=lambda name, data: garble_samples(data) if name == member else data)
    return root


def _plain(root: Path, **options: Any) -> torch.utils.data.DataLoader:
    ds = LeRobotWdsDataset(str(root), shuffle=False, **options)
    return torch.utils.data.DataLoader(ds, batch_size=None, num_workers=WORKERS)


def _fast(root: Path, **options: Any) -> torch.utils.data.DataLoader:
    return lerobot_wds.dataloader(str(root), batch_size=4, num_workers=WORKERS, shuffle=False, **options)


LOADERS = pytest.mark.parametrize("make", [_plain, _fast], ids=["DataLoader", "lerobot_wds.dataloader"])


def _anchors(out: dict[str, Any]) -> Iterator[tuple[int, int]]:
    """(episode, frame) of every sample of a sample or batch, checked against both cameras' identity."""
    eps, frames = out["episode_index"].reshape(-1).tolist(), out["frame_index"].reshape(-1).tolist()
    for i, (e, k) in enumerate(zip(eps, frames, strict=True)):
        for c, cam in enumerate(SPEC.cameras):
            image = out[cam] if out[cam].ndim == 3 else out[cam][i]
            assert read_identity(image) == (e, k, c)
        yield e, k


@LOADERS
def test_decode_error_in_worker_reaches_main_process_named(garbled_root: Path, make: Callable) -> None:
    got: list[tuple[int, int]] = []
    it = iter(make(garbled_root))
    with pytest.raises(FrameDecodeError) as caught:
        for out in it:
            got.extend(_anchors(out))
    # the traceback's frames hold the iterator in a reference cycle; left to the cyclic collector, its
    # workers are shut down from inside gc, where torch waits out a 5 s join timeout per worker
    traceback.clear_frames(caught.tb)
    del it
    assert isinstance(caught.value, LeRobotWdsError)
    msg = str(caught.value)
    assert "in DataLoader worker process" in msg
    shard = re.escape(f"{garbled_root}/shards/shard-000001.tar")
    want = (
        rf"FrameDecodeError: shard {shard}, sample episode_000003, camera observation\.images\.wrist: "
        r"decoding episode frames \d+\.\.\d+ failed: .*Invalid data"
    )
    assert re.search(want, msg), msg
    assert BAD_EPISODE not in {e for e, _ in got}  # nothing of the episode passed as good before the error


@LOADERS
def test_decode_error_in_worker_skip_drops_the_episode_and_counts_it(garbled_root: Path, make: Callable) -> None:
    loader = make(garbled_root, on_error="skip")
    got = Counter(a for out in loader for a in _anchors(out))
    good = {(e, k) for e, n in enumerate(SPEC.lengths) if e != BAD_EPISODE for k in range(n)}
    assert set(got) == good  # the bad episode is absent, every other anchor arrived
    assert loader.dataset.samples_per_rank(WORKERS) == sum(SPEC.lengths)  # the plan has no padding
    # every other anchor arrives exactly once: the bad episode's frames are not refilled with repeats
    assert all(n == 1 for n in got.values())
    assert sum(got.values()) == sum(SPEC.lengths) - SPEC.lengths[BAD_EPISODE]
    stats = loader.dataset.stats()
    assert (stats["skipped_episodes"], stats["skipped_shards"]) == (1, 0)
    [reason] = stats["skip_messages"]
    assert reason.startswith(
        f"shard {garbled_root}/shards/shard-000001.tar, sample episode_000003, camera "
        "observation.images.wrist: decoding episode frames "
    )


def test_skip_counts_reach_the_main_process_from_spawned_workers(garbled_root: Path) -> None:
    """Under spawn the dataset is pickled into each worker: the reader board travels as shared memory."""
    ds = LeRobotWdsDataset(str(garbled_root), shuffle=False, on_error="skip")
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=WORKERS, multiprocessing_context="spawn")
    assert sum(1 for _ in loader) == sum(SPEC.lengths) - SPEC.lengths[BAD_EPISODE]
    stats = ds.stats()
    assert (stats["skipped_episodes"], stats["skipped_shards"]) == (1, 0)
    assert "sample episode_000003, camera observation.images.wrist" in stats["skip_messages"][0]


def test_skip_board_sums_the_newest_iteration() -> None:
    board = ReaderBoard()
    assert board.totals() is None

    def start(worker: int, epoch: int, workers: int) -> ErrorCounter:
        row = board.row(worker)
        row.reset(epoch, workers)
        return ErrorCounter("skip", on_skip=row.record)

    for w in range(4):  # an earlier DataLoader with 4 workers, each skipping one episode
        start(w, 0, 4).handle(FrameDecodeError(f"old {w}"), "episode")
    quiet, busy = start(0, 1, 2), start(1, 1, 2)  # then 2 workers in epoch 1: rows 2 and 3 are stale
    busy.handle(FrameDecodeError("bad shard"), "shard")
    busy.handle(FrameDecodeError("bad episode"), "episode")
    totals = board.totals()
    assert (totals.skipped_shards, totals.skipped_episodes, totals.messages) == (1, 1, ("bad episode",))
    assert copy.deepcopy(board).totals() == totals  # pickled outside a worker start: a private snapshot
    quiet.handle(FrameDecodeError("é" * 2000), "episode")  # longer than a row holds: cut at a character
    first = board.totals().messages[0]
    assert set(first) == {"é"} and 0 < len(first.encode()) <= TEXT_BYTES
    assert board.row(10_000) is None  # beyond the board: such a worker's skips are logged only


def test_reader_board_sums_read_counts_and_ignores_an_abandoned_iteration() -> None:
    from lerobot_wds.reader.fetching.fetch import ReadCounters

    board = ReaderBoard()
    first = board.row(0)
    first.reset(0, 2)
    abandoned = ReadCounters(on_change=first.record_reads)
    abandoned.failed(ConnectionResetError("reset"), retried=True)
    assert (board.totals().read_retries, board.totals().read_timeouts) == (1, 0)
    rows = [board.row(0), board.row(1)]  # the next iteration: both workers reset their rows
    for row in rows:
        row.reset(1, 2)
    a, b = (ReadCounters(on_change=row.record_reads) for row in rows)
    a.failed(TimeoutError("stalled"), retried=True)
    b.failed(ConnectionResetError("reset"), retried=True)
    b.failed(TimeoutError("stalled"), retried=False)
    abandoned.failed(ConnectionResetError("late"), retried=True)  # its thread still retrying: not counted
    totals = board.totals()
    assert (totals.read_retries, totals.read_timeouts, totals.skipped_episodes) == (2, 2, 0)
    assert (abandoned.retries, a.retries, b.retries, b.timeouts) == (2, 1, 1, 1)
