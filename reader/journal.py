"""Which planned visit each delivered sample of a reader came from, readable by the main process.

An elastic resume state (:mod:`elastic`) needs, per reader, how many anchors it delivered of each segment of
its plan, up to the samples the training loop consumed. A DataLoader worker knows what it yielded, the main
process knows how many samples of each worker the loop consumed (:func:`resume.loader_consumed`): the worker
therefore writes the segment index of every sample it delivers, in order, to a small file of this dataset's
journal folder (int32 each, through ``numpy.memmap``), and ``loader_state_dict`` counts the first ``consumed``
entries. A file's header names the iteration it belongs to (epoch and plan key); entries are written before
the sample leaves the worker, so every consumed sample has its entry.

The folder is made by the dataset in the process that creates it, shared with workers by path, removed when
that dataset is collected or the process exits; folders of processes that no longer run are removed when the
next one is made.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_wds.reader.errors import ResumeError

_PREFIX = "lerobot_wds-journal-"
_HEADER = 4  # int64: epoch, plan key, capacity, entries written


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(parent: Path) -> None:
    """Removes journal folders whose creating process is gone (a ``kill -9`` leaves its folder behind)."""
    for d in parent.glob(f"{_PREFIX}*"):
        pid = d.name[len(_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


class JournalWriter:
    """One reader's journal for one iteration."""

    def __init__(self, path: Path, epoch: int, key: int, capacity: int) -> None:
        nbytes = 8 * _HEADER + 4 * max(1, capacity)
        tmp = path.with_name(path.name + f".{os.getpid()}.part")
        with open(tmp, "wb") as f:
            f.truncate(nbytes)
        os.replace(tmp, path)
        self._map = np.memmap(path, dtype=np.uint8, mode="r+", shape=(nbytes,))
        self._head = self._map[: 8 * _HEADER].view(np.int64)
        self._ids = self._map[8 * _HEADER :].view(np.int32)
        self._head[:] = (epoch, key, capacity, 0)
        self._n = 0

    def add(self, segment: int) -> None:
        """Records the next delivered sample's segment index (beyond the capacity: a pad repeat, not kept)."""
        if self._n < len(self._ids):
            self._ids[self._n] = segment
        self._n += 1
        self._head[3] = self._n


class Journal:
    """The journal folder of one dataset object (its readers' files are ``<reader>.bin``)."""

    def __init__(self) -> None:
        parent = Path(tempfile.gettempdir())
        _sweep(parent)
        self.path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=parent))
        self._cleanup: Any = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def writer(self, reader: int, epoch: int, key: int, capacity: int) -> JournalWriter:
        self.path.mkdir(parents=True, exist_ok=True)
        return JournalWriter(self.path / f"{reader}.bin", epoch, key, capacity)

    def read(self, reader: int, epoch: int, key: int, n: int) -> np.ndarray | None:
        """The segment indices of reader ``reader``'s first ``n`` delivered samples of this iteration; None when
        it has not journaled this iteration (a state computed before the iteration ran: it resumes exactly only).

        Raises:
            ResumeError: the reader journaled fewer than ``n`` samples of this iteration.
        """
        if n == 0:
            return np.zeros(0, dtype=np.int32)
        try:
            data = np.fromfile(self.path / f"{reader}.bin", dtype=np.uint8)
        except OSError:
            return None
        head = data[: 8 * _HEADER].view(np.int64)
        if len(head) < _HEADER or (int(head[0]), int(head[1])) != (epoch, key):
            return None
        if int(head[3]) < n:
            raise ResumeError(f"reader {reader} journaled {int(head[3])} delivered samples, the state needs {n}")
        return data[8 * _HEADER :].view(np.int32)[: min(n, int(head[2]))].copy()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}  # a copy (worker, pickle) never removes the folder

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._cleanup = None
