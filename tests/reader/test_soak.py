"""Soak: epochs over persistent DataLoader workers leak nothing.

Every epoch delivers every anchor exactly once (identity-checked images, shuffled by ``set_epoch``), and at
the end of each epoch (after its last batch, every batch dropped) the main process measures, per process
(itself and each worker): resident memory, open file descriptors and the shared-memory segments it holds
(descriptors into ``/dev/shm``, torch's ``file_descriptor`` strategy), plus the named ``/dev/shm/torch_<pid>_*``
entries of these processes (the ``file_system`` strategy). Epoch 1 is the warm-up: from epoch 2 on each
worker's RSS stays within 5% of its epoch-1 value, and open descriptors, shared-memory descriptors and named
``/dev/shm`` entries stay exactly what they were (a worker releases its batch slots at the end of each
iteration, see :mod:`lerobot_wds.reader.assembling.batch_slots`). Without persistent workers, the workers of every
epoch leave no ``/dev/shm`` file behind either.

The default suite runs 5 epochs on a tiny root; ``make soak`` runs the ``soak``-marked variants
(``LEROBOT_WDS_SOAK_EPOCHS``, default 20, on a bigger root with windowed cameras).
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch

import lerobot_wds
from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.testing.shards import RootSpec, make_root, read_identity

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")

WORKERS = 2
RSS_TOLERANCE = 0.05
TINY = RootSpec(lengths=(8, 8, 8, 8), episodes_per_shard=1)
BIG = RootSpec(lengths=(30, 42, 36, 24, 40, 28, 34, 38), episodes_per_shard=2, width=128, height=96, gop=8)
SOAK_EPOCHS = int(os.environ.get("LEROBOT_WDS_SOAK_EPOCHS", "20"))
MB = 1024 * 1024


@dataclass(frozen=True)
class Snapshot:
    """What the processes hold at the end of one epoch (``procs``: main first, then the workers)."""

    epoch: int
    rss: tuple[int, ...]
    fds: tuple[int, ...]
    shm_fds: tuple[int, ...]
    shm_named: int  # /dev/shm/torch_<pid>_* entries of these processes
    shm_total: int  # every /dev/shm entry on the machine (reported; other processes add to it)

    def row(self) -> str:
        rss = " ".join(f"{r / MB:.1f}" for r in self.rss)
        return (
            f"epoch {self.epoch:2d}: RSS MB (main, workers) {rss}; fds {self.fds}; shm fds {self.shm_fds}; "
            f"/dev/shm torch_<pid> entries {self.shm_named}, all entries {self.shm_total}"
        )


def _shm_fds(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/dev/shm/")
        except OSError:
            pass  # closed between listing and reading
    return n


def _snapshot(epoch: int, procs: list[psutil.Process]) -> Snapshot:
    gc.collect()  # batches (and their shared memory) the loop dropped are released now, not at some later gc
    entries = os.listdir("/dev/shm")
    prefixes = tuple(f"torch_{p.pid}_" for p in procs)
    return Snapshot(
        epoch=epoch,
        rss=tuple(p.memory_info().rss for p in procs),
        fds=tuple(p.num_fds() for p in procs),
        shm_fds=tuple(_shm_fds(p.pid) for p in procs),
        shm_named=sum(e.startswith(prefixes) for e in entries),
        shm_total=len(entries),
    )


def _anchors(batch: dict[str, Any], cameras: tuple[str, ...]) -> Iterator[tuple[int, int]]:
    """(episode, frame) of every sample of a batch; each camera's anchor image shows exactly that frame."""
    eps, frames = batch["episode_index"].tolist(), batch["frame_index"].tolist()
    for i, (e, k) in enumerate(zip(eps, frames, strict=True)):
        for c, cam in enumerate(cameras):
            image = batch[cam][i]
            assert read_identity(image if image.ndim == 3 else image[-1]) == (e, k, c)
        yield e, k


def soak(loader: torch.utils.data.DataLoader, spec: RootSpec, epochs: int) -> list[Snapshot]:
    """Runs ``epochs`` epochs, asserting exact delivery each epoch; returns the end-of-epoch snapshots."""
    ds = loader.dataset
    everything = Counter({(e, k): 1 for e, n in enumerate(spec.lengths) for k in range(n)})
    assert ds.samples_per_rank(WORKERS) == sum(spec.lengths)  # no padding: "exactly once" is the whole epoch
    main = psutil.Process()
    before = {c.pid for c in main.children()}
    procs: list[psutil.Process] = []
    snaps = []
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        got: Counter[tuple[int, int]] = Counter()
        order = []
        for batch in loader:
            order.extend(_anchors(batch, spec.cameras))
        got.update(order)
        del batch
        assert got == everything, f"epoch {epoch}: anchors delivered other than exactly once"
        workers = [c for c in main.children() if c.pid not in before and c.exe() == main.exe()]
        if not procs:
            assert len(workers) == WORKERS
            procs = [main, *workers]
        assert {p.pid for p in workers} == {p.pid for p in procs[1:]}, "persistent workers were replaced"
        snaps.append(_snapshot(epoch + 1, procs))
        print(snaps[-1].row())
    return snaps


def assert_flat(snaps: list[Snapshot]) -> None:
    """Epoch 1 is the warm-up; every later epoch holds what it held (see the module docstring)."""
    first = snaps[0]
    for s in snaps[1:]:
        for w in range(1, len(first.rss)):
            assert abs(s.rss[w] - first.rss[w]) <= RSS_TOLERANCE * first.rss[w], (
                f"worker {w}: RSS {s.rss[w] / MB:.1f} MB at epoch {s.epoch}, {first.rss[w] / MB:.1f} MB at epoch 1"
            )
        assert (s.fds, s.shm_fds, s.shm_named) == (first.fds, first.shm_fds, first.shm_named), s.row()


@pytest.fixture(params=["file_descriptor", "file_system"])
def sharing_strategy(request: pytest.FixtureRequest) -> Iterator[str]:
    """torch's strategy for tensors sent between processes: shm descriptors passed over sockets (Linux's
    default), or named /dev/shm files."""
    if request.param not in torch.multiprocessing.get_all_sharing_strategies():
        pytest.skip(f"sharing strategy {request.param} not available")
    old = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy(request.param)
    yield request.param
    torch.multiprocessing.set_sharing_strategy(old)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("soak_tiny")
    make_root(root, TINY)
    return root


@pytest.fixture(scope="module")
def big_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("soak_big")
    make_root(root, BIG)
    return root


def _fast(root: Path, **options: Any) -> torch.utils.data.DataLoader:
    return lerobot_wds.dataloader(str(root), batch_size=4, num_workers=WORKERS, persistent_workers=True, **options)


def _plain(root: Path, **options: Any) -> torch.utils.data.DataLoader:
    ds = LeRobotWdsDataset(str(root), **options)
    return torch.utils.data.DataLoader(ds, batch_size=4, num_workers=WORKERS, persistent_workers=True)


def test_five_epochs_in_batch_slots_leak_nothing(tiny_root: Path, sharing_strategy: str) -> None:
    assert_flat(soak(_fast(tiny_root), TINY, epochs=5))


def test_five_epochs_per_sample_collate_leak_nothing(tiny_root: Path) -> None:
    assert_flat(soak(_plain(tiny_root), TINY, epochs=5))


def test_workers_of_every_epoch_leave_no_shm_files(tiny_root: Path) -> None:
    """Without persistent workers each epoch's workers exit; under the file_system strategy a storage they never
    freed stays in /dev/shm as long as the main process lives (their kept batch slots did: +5 files an epoch)."""
    if "file_system" not in torch.multiprocessing.get_all_sharing_strategies():
        pytest.skip("no file_system sharing strategy here")
    old = torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_system")
    try:
        loader = lerobot_wds.dataloader(str(tiny_root), batch_size=4, num_workers=WORKERS)
        main = psutil.Process()
        before = {c.pid for c in main.children()}
        seen: set[int] = set()
        for epoch in range(3):
            loader.dataset.set_epoch(epoch)
            n = 0
            for n, batch in enumerate(loader, 1):
                if n == 1:
                    seen |= {c.pid for c in main.children() if c.pid not in before and c.exe() == main.exe()}
                del batch
            assert n == sum(TINY.lengths) // 4
            gc.collect()
            prefixes = tuple(f"torch_{pid}_" for pid in seen)
            assert [e for e in os.listdir("/dev/shm") if e.startswith(prefixes)] == [], f"epoch {epoch}"
        assert len(seen) == 3 * WORKERS  # fresh workers every epoch
    finally:
        torch.multiprocessing.set_sharing_strategy(old)


WINDOWS = {cam: [-0.2, -0.1, 0.0] for cam in BIG.cameras}


@pytest.mark.soak
def test_soak_batch_slots(big_root: Path, sharing_strategy: str) -> None:
    loader = _fast(big_root, delta_timestamps=WINDOWS, active_episodes=3)
    assert_flat(soak(loader, BIG, epochs=SOAK_EPOCHS))


@pytest.mark.soak
def test_soak_per_sample_collate(big_root: Path) -> None:
    loader = _plain(big_root, delta_timestamps=WINDOWS, active_episodes=3)
    assert_flat(soak(loader, BIG, epochs=SOAK_EPOCHS))
