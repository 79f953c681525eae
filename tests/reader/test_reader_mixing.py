"""The mixing guarantee: every batch (the first of a pass included) holds its target of distinct episodes at
any frame size, window, GOP and batch size, inside the worker's memory ceiling; whatever bounds the pool below the
target is said out loud; ``stats()`` reports the mixing delivered (exact counts on small data)."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.reader.assembling.mixing_tally import MixingTally
from lerobot_wds.reader.decoding.budget import FrameBudget
from lerobot_wds.reader.decoding.decode import DEFAULT_MEMORY_BYTES, DecodeConfig
from lerobot_wds.reader.scheduling import mixing
from lerobot_wds.reader.scheduling.admission import Admission, PoolBounds, decoder_nbytes
from lerobot_wds.reader.scheduling.mixing import (
    expected_distinct,
    iid_distinct,
    mix_target,
    open_target,
)
from lerobot_wds.reader.scheduling.pool import schedule
from lerobot_wds.reader.scheduling.windows import SARM_DELTA_INDICES
from lerobot_wds.testing.shards import RootSpec, make_root

CAMS = ("a", "b", "c")


def _episode(index: int, length: int, width: int, height: int) -> SimpleNamespace:
    meta = SimpleNamespace(cameras={c: SimpleNamespace(width=width, height=height) for c in CAMS})
    videos = {c: b"x" * 100 for c in CAMS}
    return SimpleNamespace(
        index=index, length=length, meta=meta, videos=videos, anchors=None, order=None, anchor_range=(0, length)
    )


class _Planner:
    """Stands in for FramePool in planning: GOPs of ``gop`` frames (AV1-like 2, or x264's 250 with a lead-in
    frame before the episode: episodes start mid-GOP), its frame budget (``budget``: a user's, None: automatic)
    and the largest reservation asked for."""

    def __init__(self, gop: int = 2, budget: int | None = None) -> None:
        self.gop = gop
        self.budget = FrameBudget(budget)

    def gops(self, visit, camera):
        start = -37 if self.gop > 2 else 0
        return list(range(start, visit.episode.length, self.gop))

    def reserve(self, nbytes: int) -> None:
        self.budget.reserve(nbytes)

    @property
    def reserved(self) -> int:
        return self.budget.reserved


def _bounds(batch: int, *, open_bytes: int | None = None, memory: int = DEFAULT_MEMORY_BYTES) -> PoolBounds:
    return PoolBounds(
        active=max(64, open_target(batch)), target=open_target(batch), open_bytes=open_bytes, memory=memory
    )


def _run(
    width: int,
    height: int,
    deltas: tuple[int, ...],
    *,
    gop: int = 2,
    batch: int = 16,
    episodes: int = 60,
    budget: int | None = None,
    **bounds,
):
    r = random.Random(5)
    eps = [_episode(i, r.randint(200, 500), width, height) for i in range(episodes)]
    planner = _Planner(gop, budget)
    out = list(
        schedule(
            eps,
            memory=Admission(_bounds(batch, **bounds), planner),
            deltas={c: deltas for c in CAMS},
            rng=random.Random(1),
            batch=batch,
            lookahead=batch,
        )
    )
    spans: dict[int, list[int]] = {}
    for i, a in enumerate(out):
        spans.setdefault(a.visit.vid, [i, i])[1] = i
    # visits open at the middle of the stream (the pool is in its steady state there)
    middle = len(out) // 2
    open_mid = sum(lo <= middle <= hi for lo, hi in spans.values())
    batches = [out[i : i + batch] for i in range(0, len(out) - batch + 1, batch)]
    distinct = [len({a.episode.index for a in b}) for b in batches]
    return out, planner, open_mid, distinct, [e.length for e in eps]


@pytest.mark.parametrize("gop", [2, 250])
@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 480)])
@pytest.mark.parametrize("window", ["single", "steps8", "sarm"])
def test_every_batch_meets_the_target_inside_the_memory_ceiling(
    width: int, height: int, window: str, gop: int
) -> None:
    """60 episodes through a pool of 24+ (the pass's tail drains a pool that does not hold every episode)."""
    deltas = {"single": (0,), "steps8": tuple(range(-350, 1, 50)), "sarm": SARM_DELTA_INDICES}[window]
    out, planner, open_mid, distinct, lengths = _run(width, height, deltas, gop=gop)
    # every batch, the first included: 16 distinct open visits while the pool holds 16, 10+ in the tail
    assert distinct[0] == 16 and min(distinct) >= 10
    assert sum(d == 16 for d in distinct) >= 0.75 * len(distinct)
    frame = 3 * width * height
    assert planner.reserved <= DEFAULT_MEMORY_BYTES  # decoded frames planned under the worker's ceiling
    if gop == 250:  # frames streamed: windows' positions (+ clamped edges) per camera, a GOP would be 250
        positions = len(set(deltas)) + 2
        assert planner.reserved <= 64 * 3 * positions * 3 * frame
    if window == "single" and gop == 2:  # runs of GOPs of 2: the default budget holds more than the target
        assert open_mid >= 24


@pytest.mark.parametrize("window", ["single", "sarm"])
def test_a_pool_holding_the_share_gives_every_batch_its_target(window: str) -> None:
    """A reader whose episodes all fit the pool (24 of them, the benchmark profiles' share): every batch of the
    pass, its tail included, holds 80% of what i.i.d. sampling over them gives."""
    deltas = {"single": (0,), "sarm": SARM_DELTA_INDICES}[window]
    _, _, _, distinct, lengths = _run(640, 480, deltas, gop=250, episodes=24)
    assert min(distinct) >= mix_target(lengths, 16) >= 0.8 * iid_distinct(lengths, 16)


def test_at_720p_the_ceiling_holds_and_bounds_the_pool(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixing, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.scheduling.mixing"):
        _, planner, open_mid, distinct, _ = _run(1280, 720, SARM_DELTA_INDICES, gop=250)
    visit = 9 * 3 * 3 * 1280 * 720 + 3 * decoder_nbytes(1280, 720)  # at least: 9 window positions, 3 cameras
    assert planner.reserved <= DEFAULT_MEMORY_BYTES and open_mid <= DEFAULT_MEMORY_BYTES // visit + 1 < 24
    assert max(distinct) <= open_mid + 1
    assert any("DecodeConfig.memory_limit_bytes=1200 MiB holds" in r.getMessage() for r in caplog.records)


def test_batch_64_and_256_meet_80_percent_of_iid() -> None:
    for batch in (64, 256):
        _, _, open_mid, distinct, lengths = _run(320, 240, (0,), batch=batch, episodes=200)
        assert min(distinct) >= mix_target(lengths, batch) >= 0.8 * iid_distinct(lengths, batch)
    _, _, _, distinct, lengths = _run(320, 240, SARM_DELTA_INDICES, batch=64, episodes=200)
    assert min(distinct) >= mix_target(lengths, 64)


def test_the_memory_ceiling_holds_and_is_said_once_when_it_bounds_the_mix(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixing, "_WARNED", set())
    frame = 3 * 640 * 480
    visit = 11 * 3 * frame + 3 * decoder_nbytes(640, 480) + 300  # a sarm visit over GOP 250, 3 cameras
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.scheduling.mixing"):
        _, planner, open_mid, distinct, _ = _run(640, 480, SARM_DELTA_INDICES, gop=250, memory=8 * visit)
        _run(640, 480, SARM_DELTA_INDICES, gop=250, memory=8 * visit)
    least = 9 * 3 * frame + 3 * decoder_nbytes(640, 480)  # a visit holds at least its window's 9 positions
    assert open_mid <= 8 * visit // least and planner.reserved <= 8 * visit and max(distinct) <= open_mid + 1
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "DecodeConfig.memory_limit_bytes=" in warned[0], warned
    fit = int(warned[0].split(" holds ")[1].split()[0])
    assert 1 <= fit <= 8 * visit // least and f"batches of 16 hold at most {fit} distinct episodes" in warned[0]
    assert "the target of 24 open needs" in warned[0]


def test_a_user_budget_too_small_for_the_target_is_obeyed_and_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixing, "_WARNED", set())
    frame = 3 * 640 * 480
    unit = 10 * 3 * frame  # a sarm unit's planned peak here: 9 positions of one residue + an edge, 3 cameras
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.scheduling.mixing"):
        _, planner, open_mid, _, _ = _run(640, 480, SARM_DELTA_INDICES, budget=6 * unit)
        _run(640, 480, SARM_DELTA_INDICES, budget=6 * unit)
    assert planner.reserved <= 6 * unit and open_mid <= 6
    warned = [r.getMessage() for r in caplog.records if "frame_cache_bytes" in r.getMessage()]
    assert len(warned) == 1, warned
    fit = int(warned[0].split(" holds ")[1].split()[0])
    frames = float(warned[0].split("each: ")[1].split()[0])  # a visit's decoded frames (and its decoders, videos)
    assert 1 <= fit <= 6 and 20 < frames <= unit / 2**20 + 0.1
    assert f"batches of 16 hold at most {fit} distinct" in warned[0] and "the target of 24 open" in warned[0]


def test_open_bytes_too_small_for_the_target_is_said_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mixing, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.reader.scheduling.mixing"):
        _, _, open_mid, _, _ = _run(64, 48, (0,), open_bytes=1500)  # 300 bytes of video per episode
    assert open_mid <= 5
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "open_episode_bytes=0 MiB holds 5 open episodes" in warned[0], warned
    assert "batches of 16 hold at most 5 distinct episodes" in warned[0]


def test_tally_counts_distinct_episodes_per_batch() -> None:
    t = MixingTally(4)
    t.add([1, 1, 2, 3, 4, 4, 4, 4, 5])
    assert (t.batches, t.distinct, t.mean, t.least) == (2, 4, 2.0, 1)
    assert expected_distinct(1, 16) == 1.0 and round(expected_distinct(24, 16), 2) == 11.85
    assert round(iid_distinct([100] * 20, 16), 2) == round(expected_distinct(20, 16), 2)
    assert mix_target([100] * 20, 16) == 9 and mix_target([100] * 1000, 16) == 13 and mix_target([5], 16) == 1


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
    for epoch in range(2):
        ds.set_epoch(epoch)
        distinct = [len(set(b["episode_index"].tolist())) for b in ds if len(b["episode_index"]) == 16]
        mix = ds.stats()["mixing"]
        assert mix["batches"] == len(distinct) and mix["per_worker"] == {0: sum(distinct) / len(distinct)}
        assert mix["distinct_per_batch"] == sum(distinct) / len(distinct)
        # every batch, the first of each epoch included, not a mean
        assert min(distinct) >= 10 and mix["min_distinct_per_batch"] == min(distinct)
        # 80% of what i.i.d. gives over these 48 episodes of 10-16 frames (13.4 for equal lengths)
        assert mix["target"] == mix_target([13] * 48, 16) == 11 and mix["batch"] == 16
        assert min(distinct) >= mix["target"]
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
    assert ds.stats()["mixing"]["min_distinct_per_batch"] == min(distinct)
    warned = [r.getMessage() for r in caplog.records if "frame_cache_bytes" in r.getMessage()]
    assert len(warned) == 1 and "the target of 24 open needs" in warned[0]


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
