"""Shuffle-quality metrics on plain sequences, and one measured run on a factory root."""

from __future__ import annotations

from pathlib import Path

import pytest

from lerobot_wds.tools.bench.shuffle_quality import lag1_autocorr, mean_gap_fraction, measure, same_episode_rate


def test_metrics_on_plain_sequences() -> None:
    assert same_episode_rate([1, 1, 2, 2, 3]) == 0.5
    assert lag1_autocorr([1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.25)
    assert lag1_autocorr([5.0, 5.0]) == 0.0
    assert mean_gap_fraction([0, 1, 0, 1]) == pytest.approx(2 / 4)


def test_interleaving_lowers_same_episode_rate(wds_root: Path) -> None:
    ordered = measure(str(wds_root), 1, 0, shuffle=False, batch_size=4)
    mixed = measure(str(wds_root), 8, 0, shuffle=True, batch_size=4)
    assert ordered.samples == mixed.samples == 78
    assert ordered.same_episode_rate == pytest.approx(70 / 77, abs=1e-4)
    assert mixed.same_episode_rate < 0.4
    assert mixed.distinct_episodes_per_batch > ordered.distinct_episodes_per_batch
    assert mixed.decoded_frames == ordered.decoded_frames == 2 * 78  # every frame decoded once per camera


@pytest.mark.parametrize("mode", ["sarm", "window8x1s"])
def test_every_mode_is_measured(wds_root: Path, mode: str) -> None:
    q = measure(str(wds_root), 8, 0, shuffle=True, mode=mode, batch_size=4)
    assert q.mode == mode and q.samples == 78 and q.distinct_episodes_per_batch > 1.5
