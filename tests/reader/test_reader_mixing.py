"""The mixing guarantee: enough open decode units at any frame size and window, a too-small budget said out loud,
and the mixing delivered reported by ``stats()`` (exact counts on small data)."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.reader.decoding.decode import DEFAULT_FRAME_BYTES, DecodeConfig
from lerobot_wds.reader.scheduling import mixing
from lerobot_wds.reader.scheduling.mixing import MixingTally, expected_distinct, open_target
from lerobot_wds.reader.scheduling.pool import schedule
from lerobot_wds.reader.scheduling.windows import SARM_DELTA_INDICES
from lerobot_wds.testing.shards import RootSpec, make_root

CAMS = ("a", "b", "c")


def _episode(index: int, length: int, width: int, height: int) -> SimpleNamespace:
    meta = SimpleNamespace(cameras={c: SimpleNamespace(width=width, height=height) for c in CAMS})
    videos = {c: b"x" * 100 for c in CAMS}
    return SimpleNamespace(
        index=index, length=length, meta=meta, videos=videos, anchors=None, anchor_range=(0, length)
    )


class _Planner:
    """Stands in for FramePool in planning: AV1-like GOPs of 2 frames, and the largest reservation asked for."""

    def __init__(self) -> None:
        self.reserved = 0

    def gops(self, visit, camera):
        return list(range(0, visit.episode.length, 2))

    def reserve(self, nbytes: int) -> None:
        self.reserved = max(self.reserved, nbytes)


def _run(
    width: int,
    height: int,
    deltas: tuple[int, ...],
    budget: int | None,
    episodes: int = 60,
    open_bytes: int = 10**12,
):
    r = random.Random(5)
    eps = [_episode(i, r.randint(200, 500), width, height) for i in range(episodes)]
    planner = _Planner()
    out = list(
        schedule(
            eps,
            frames=planner,
            deltas={c: deltas for c in CAMS},
            rng=random.Random(1),
            active=64,
            open_bytes=open_bytes,
            frame_budget=budget,
            target=open_target(16),
            batch=16,
            lookahead=16,
        )
    )
    spans: dict[int, list[int]] = {}
    for i, a in enumerate(out):
        spans.setdefault(a.visit.vid, [i, i])[1] = i
    # visits open at the middle of the stream (the pool is in its steady state there)
    middle = len(out) // 2
    open_mid = sum(lo <= middle <= hi for lo, hi in spans.values())
    batches = [out[i : i + 16] for i in range(0, len(out) - 15, 16)]
    distinct = [len({a.episode.index for a in b}) for b in batches]
    return out, planner, open_mid, distinct


@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 480), (1280, 720)])
@pytest.mark.parametrize("window", ["single", "steps8", "sarm"])
def test_default_budget_keeps_the_target_open_at_any_frame_size_and_window(
    width: int, height: int, window: str
) -> None:
    deltas = {"single": (0,), "steps8": tuple(range(-350, 1, 50)), "sarm": SARM_DELTA_INDICES}[window]
    out, planner, open_mid, distinct = _run(width, height, deltas, None)
    assert open_target(16) == 24
    assert open_mid >= 24
    assert sum(distinct) / len(distinct) >= 10
    frame = 3 * width * height
    if window == "sarm":  # 9 window positions (x 2 residues of a GOP while they fit) per camera, 24 visits
        per_unit = 18 if 24 * 18 * 3 * frame <= DEFAULT_FRAME_BYTES * 1.2 else 9  # pairs, or one residue
        assert planner.reserved >= 24 * per_unit * 3 * frame
        if per_unit == 9:  # past the default budget: the target's units and no more
            assert planner.reserved <= 24 * (per_unit + 2) * 3 * frame
    if window == "single":  # one GOP of 2 frames per camera: the default budget holds more than the target
        assert planner.reserved <= DEFAULT_FRAME_BYTES


def test_a_user_budget_too_small_for_the_target_is_obeyed_and_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixing, "_WARNED", set())
    frame = 3 * 640 * 480
    unit = 10 * 3 * frame  # a sarm unit's planned peak here: 9 positions of one residue + an edge, 3 cameras
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.scheduling.mixing"):
        _, planner, open_mid, _ = _run(640, 480, SARM_DELTA_INDICES, 6 * unit)
        _run(640, 480, SARM_DELTA_INDICES, 6 * unit)
    assert planner.reserved <= 6 * unit and open_mid <= 6
    warned = [r.getMessage() for r in caplog.records if "frame_cache_bytes" in r.getMessage()]
    assert len(warned) == 1, warned
    fit = int(warned[0].split(" holds ")[1].split()[0])
    each = float(warned[0].split("window (")[1].split()[0])
    assert 1 <= fit <= 6 and fit * each <= 6 * unit / 2**20 + 0.5 and 20 < each <= unit / 2**20 + 0.1
    assert f"mix about {expected_distinct(fit, 16):.1f} distinct" in warned[0]
    needs = int(warned[0].split("needs 24 open, about ")[1].split()[0])
    assert abs(needs - 24 * each) <= 2 and "the target of 10.0" in warned[0]  # each is rounded to 0.1 MiB


def test_open_bytes_too_small_for_the_target_is_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixing, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.scheduling.mixing"):
        _, _, open_mid, _ = _run(64, 48, (0,), None, open_bytes=1500)  # 300 bytes of video per episode
    assert open_mid <= 5
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "open_episode_bytes=0 MiB holds 5 open episodes" in warned[0], warned
    assert f"mix about {expected_distinct(5, 16):.1f} distinct" in warned[0]


def test_tally_counts_distinct_episodes_per_batch() -> None:
    t = MixingTally(4)
    t.add([1, 1, 2, 3, 4, 4, 4, 4, 5])
    assert (t.batches, t.distinct, t.mean) == (2, 4, 2.0)
    assert expected_distinct(1, 16) == 1.0 and round(expected_distinct(24, 16), 2) == 11.85


@pytest.fixture(scope="module")
def many_episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 episodes of 10-16 frames, 2 cameras, GOP 2 without B-frames (residue classes for strided windows)."""
    root = tmp_path_factory.mktemp("mixing_root")
    r = random.Random(3)
    lengths = tuple(r.randint(10, 16) for _ in range(48))
    make_root(root, RootSpec(lengths=lengths, width=64, height=72, gop=2, bframes=0, episodes_per_shard=6))
    return root


@pytest.mark.parametrize("window", [None, (-0.4, -0.2, 0.0)])
def test_batches_mix_at_least_ten_episodes_and_stats_report_it_exactly(
    many_episodes: Path, window: tuple[float, ...] | None
) -> None:
    probe = LeRobotWdsDataset(str(many_episodes), shuffle=False)
    deltas = {c: list(window) for c in probe.camera_keys} if window else None
    ds = LeRobotWdsDataset(str(many_episodes), delta_timestamps=deltas, batch_size=16, return_uint8=True, seed=2)
    distinct = [len(set(b["episode_index"].tolist())) for b in ds if len(b["episode_index"]) == 16]
    mix = ds.stats()["mixing"]
    assert mix["batches"] == len(distinct) and mix["per_worker"] == {0: sum(distinct) / len(distinct)}
    assert mix["distinct_per_batch"] == sum(distinct) / len(distinct) >= 10
    assert mix["target"] == 10.0 and mix["batch"] == 16
    assert ds.stats()["frames"]["evictions"] == 0


def test_a_small_budget_lowers_the_mix_reported_and_warns(
    many_episodes: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixing, "_WARNED", set())
    frame = 3 * 64 * 72
    budget = 4 * 2 * 2 * frame  # 4 open visits of one 2-frame GOP per camera
    ds = LeRobotWdsDataset(str(many_episodes), batch_size=16, decode=DecodeConfig(frame_cache_bytes=budget))
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.scheduling.mixing"):
        distinct = [len(set(b["episode_index"].tolist())) for b in ds if len(b["episode_index"]) == 16]
    assert max(distinct) <= 5 and ds.stats()["mixing"]["distinct_per_batch"] == sum(distinct) / len(distinct)
    warned = [r.getMessage() for r in caplog.records if "frame_cache_bytes" in r.getMessage()]
    assert len(warned) == 1 and "target of 10.0 needs 24 open" in warned[0]


def test_a_reader_share_too_small_for_the_target_is_said(
    many_episodes: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixing, "_WARNED", set())
    ds = LeRobotWdsDataset(str(many_episodes), batch_size=16, rank=0, world_size=8)
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.scheduling.mixing"):
        next(iter(ds))
    warned = [r.getMessage() for r in caplog.records if "readers" in r.getMessage()]
    assert len(warned) == 1 and "8 readers (ranks x workers) leave a reader 6 episodes" in warned[0]
    assert f"at most about {expected_distinct(6, 16):.1f} distinct" in warned[0]
