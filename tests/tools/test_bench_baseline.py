"""Conformance test of the benchmark baseline: LeRobotDataset and our reader, same dataset and settings.

Needs lerobot[dataset]==0.6.1 (Python >= 3.12); run with ``make conformance``. The fixture dataset is converted
with our converter, then both loaders run the same scenario; counts and shapes must agree exactly and the
report must pair them into a ratio row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lerobot_wds.tools.bench.records import load_records
from lerobot_wds.tools.bench.report import merge_scenarios, ratio_rows
from lerobot_wds.tools.bench.scenarios import MODES
from lerobot_wds.tools.cli import main as cli_main

pytestmark = pytest.mark.conformance
pytest.importorskip("lerobot")


@pytest.fixture(scope="module")
def converted(small_lerobot_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("bench_converted") / "wds"
    assert cli_main(["convert", str(small_lerobot_dataset.root), str(dest), "--no-progress"]) == 0
    return dest


@pytest.mark.parametrize("mode", ["single", "window8x1s"])
def test_baseline_and_ours_same_counts(small_lerobot_dataset, converted: Path, tmp_path: Path, mode: str) -> None:
    argv = [
        "bench",
        str(converted),
        "--mode",
        mode,
        "--num-workers",
        "1",
        "--batch-size",
        "3",
        "--num-batches",
        "3",
        "--warmup",
        "1",
        "--baseline",
        "lerobot",
        "--lerobot-root",
        str(small_lerobot_dataset.root),
        "--out",
        str(tmp_path),
    ]
    assert cli_main(argv) == 0
    records = {r["loader"]: r for r in load_records(tmp_path)}
    assert sorted(records) == ["lerobot", "lerobot-wds"]
    cams = len(small_lerobot_dataset.spec.cameras)
    for r in records.values():
        assert r["samples"] == 9 and r["frames"] == 9 * cams * MODES[mode].window_length()
        assert r["cameras"] == cams
    base_cache = records["lerobot"]["video_decoder_cache"]
    assert base_cache["hits"] + base_cache["misses"] > 0  # lerobot's decoder cache was counted in the worker
    (row,) = ratio_rows(merge_scenarios(list(records.values())))
    assert row["ratios"]["frames_per_s_node"] > 0
