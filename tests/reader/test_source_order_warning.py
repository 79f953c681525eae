"""A root converted with ``--order source`` is said once per process: its batches mix runs of neighbours."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert import ConvertConfig, convert

SAID = "was converted with --order source: its shards hold episodes in recording order"


def test_a_source_order_root_is_said_once_and_a_shuffled_one_never(
    small_lerobot_dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    roots = {}
    for order in ("source", "shuffle"):
        roots[order] = tmp_path / order
        convert(
            ConvertConfig(
                source=str(small_lerobot_dataset.root), dest=str(roots[order]), progress=False, order=order
            )
        )
    caplog.set_level(logging.WARNING, logger="lerobot_wds")
    for _ in range(2):
        LeRobotWdsDataset(str(roots["shuffle"]))
        LeRobotWdsDataset(str(roots["source"]))
    said = [r.getMessage() for r in caplog.records if SAID in r.getMessage()]
    assert said == [
        f"{roots['source']} {SAID}, so a worker reads runs of consecutive episodes (often one recording session) "
        "and its batches mix only those; convert with --order shuffle (the default) for batches drawn across the "
        "dataset"
    ]
