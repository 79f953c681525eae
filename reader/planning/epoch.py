"""An epoch counter shared with DataLoader workers, so ``set_epoch`` reaches persistent workers too.

The value lives in shared memory (``multiprocessing.Value``) while the dataset is handed to a worker process
(fork or spawn); pickled anywhere else (deepcopy, saving the object) it degrades to a plain int snapshot.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import get_spawning_popen
from typing import Any

from lerobot_wds.reader.errors import OptionError


class SharedEpoch:
    """An integer epoch readable by workers started after or before ``set``."""

    def __init__(self, epoch: int = 0) -> None:
        self._value: Any = multiprocessing.Value("q", epoch, lock=False)

    def get(self) -> int:
        return int(self._value.value)

    def set(self, epoch: int) -> None:
        if epoch < 0:
            raise OptionError(f"epoch must be >= 0, got {epoch}")
        self._value.value = epoch

    def __getstate__(self) -> dict[str, Any]:
        if get_spawning_popen() is not None:
            return {"shared": self._value}
        return {"plain": self.get()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "shared" in state:
            self._value = state["shared"]
        else:
            self._value = multiprocessing.Value("q", state["plain"], lock=False)
