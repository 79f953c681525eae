"""Where this reader runs: rank / world size of the job and worker id / count of the DataLoader.

Detected at the edge (torch.distributed when initialised, else the launcher's RANK / WORLD_SIZE environment,
else a single process) and passed around as a small frozen value, so splitting stays a pure function and tests
inject any topology they like.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from lerobot_wds.reader.errors import OptionError


@dataclass(frozen=True)
class Topology:
    """Rank, world size, DataLoader worker id and worker count of one reading process."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise OptionError(f"Topology: rank {self.rank} must be in [0, world_size={self.world_size})")
        if self.num_workers < 1 or not 0 <= self.worker < self.num_workers:
            raise OptionError(f"Topology: worker {self.worker} must be in [0, num_workers={self.num_workers})")

    @property
    def slots(self) -> int:
        """Number of independent readers in the job: ranks x workers."""
        return self.world_size * self.num_workers

    @property
    def slot(self) -> int:
        """This reader's global index in [0, slots): rank-major, then worker."""
        return self.rank * self.num_workers + self.worker


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as e:
        raise OptionError(f"environment variable {name}={value!r} is not an integer") from e


def detect_rank_world() -> tuple[int, int]:
    """Returns (rank, world_size) from torch.distributed if initialised, else RANK/WORLD_SIZE, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if (rank is None) != (world is None):
        raise OptionError(f"environment has only one of RANK={rank} and WORLD_SIZE={world}; set both or neither")
    return (rank, world) if rank is not None and world is not None else (0, 1)


def detect_ranks_per_node() -> int:
    """Ranks sharing this node: the launcher's LOCAL_WORLD_SIZE (torchrun sets it), else 1."""
    n = _env_int("LOCAL_WORLD_SIZE")
    if n is not None and n < 1:
        raise OptionError(f"environment variable LOCAL_WORLD_SIZE={n}; expected an integer >= 1")
    return n or 1


def detect_worker() -> tuple[int, int]:
    """Returns (worker id, worker count) of the current DataLoader worker, (0, 1) in the main process."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def detect_topology(rank_world: tuple[int, int] | None = None) -> Topology:
    """Detects the full topology; ``rank_world`` overrides the (rank, world size) detection."""
    rank, world = rank_world if rank_world is not None else detect_rank_world()
    worker, workers = detect_worker()
    return Topology(rank=rank, world_size=world, worker=worker, num_workers=workers)
