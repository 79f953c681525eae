"""A real 2-process torchrun (gloo) job, 2 DataLoader workers per rank, reading a factory root."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from reader_torchrun_worker import run_ranks

from lerobot_wds.testing.shards import RootSpec


@pytest.mark.slow
def test_torchrun_two_ranks_two_workers(wds_root: Path, tmp_path: Path) -> None:
    ranks = run_ranks(wds_root, tmp_path)
    assert [r["world"] for r in ranks] == [2, 2]
    lengths = RootSpec().lengths
    every = {(e, k) for e, n in enumerate(lengths) for k in range(n)}
    for epoch in range(2):
        per_rank = [[tuple(i) for i in r["epochs"][epoch]["ids"]] for r in ranks]
        assert len(per_rank[0]) == len(per_rank[1]) == ranks[0]["samples_per_rank"]
        assert ranks[0]["epochs"][epoch]["batches"] == ranks[1]["epochs"][epoch]["batches"]
        counts = Counter(per_rank[0] + per_rank[1])
        assert set(counts) == every  # every anchor at least once; the rest are the planned pad repeats
        assert sum(counts.values()) == 2 * ranks[0]["samples_per_rank"]
    assert ranks[0]["epochs"][0]["ids"] != ranks[0]["epochs"][1]["ids"]
