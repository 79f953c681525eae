"""The episode table a benchmark's mixing reference is computed from: every episode's length and task.

Read from a LeRobot v3 ``meta/episodes/chunk-*/file-*.parquet`` (a source root, or a converted root, which
holds a copy of the source meta). An episode with several tasks is labelled by its first one (lerobot's synthetic
and recorded datasets have one task per episode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_wds.tools.errors import BenchError

COLUMNS = ("episode_index", "length", "tasks")


@dataclass(frozen=True)
class EpisodeTable:
    """Episode index -> frames and episode index -> task, of one dataset."""

    lengths: dict[int, int]
    tasks: dict[int, str]

    def subset(self, episodes: set[int]) -> EpisodeTable:
        """The table restricted to ``episodes`` (e.g. those a conversion holds)."""
        return EpisodeTable(
            {e: n for e, n in self.lengths.items() if e in episodes},
            {e: t for e, t in self.tasks.items() if e in episodes},
        )


def read_episode_table(root: str | Path) -> EpisodeTable:
    """Reads the episode table of the LeRobot v3 (or converted) root ``root``.

    Raises:
        BenchError: naming the root or file when there is no episode metadata or a file lacks a column.
    """
    files = sorted(Path(root).glob("meta/episodes/chunk-*/file-*.parquet"))
    if not files:
        raise BenchError(f"{root}: no meta/episodes/chunk-*/file-*.parquet; expected a LeRobot v3 root")
    lengths: dict[int, int] = {}
    tasks: dict[int, str] = {}
    for path in files:
        try:
            table = pq.read_table(path, columns=list(COLUMNS))
        except (pa.ArrowException, OSError) as e:
            raise BenchError(f"{path}: expected parquet with columns {list(COLUMNS)}: {e}") from e
        for ep, length, ep_tasks in zip(*(table.column(c).to_pylist() for c in COLUMNS), strict=True):
            if not ep_tasks:
                raise BenchError(f"{path}: episode {ep} has no task")
            lengths[int(ep)] = int(length)
            tasks[int(ep)] = str(ep_tasks[0])
    return EpisodeTable(lengths, tasks)
