"""Pure reader pieces with plain values: splitting, windows, cache, shuffle buffer, anchors, topology."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

from lerobot_wds.core.format import EpisodeExtent, ShardInfo
from lerobot_wds.core.lru import LruCache
from lerobot_wds.reader.decoding.budget import FrameBudget
from lerobot_wds.reader.planning.splitting import epoch_sequence, plan_epoch
from lerobot_wds.reader.planning.topology import Topology, detect_rank_world
from lerobot_wds.reader.scheduling.admission import Admission, PoolBounds
from lerobot_wds.reader.scheduling.passes import cycle_passes, shuffle_buffer
from lerobot_wds.reader.scheduling.pool import schedule
from lerobot_wds.reader.scheduling.units import plan_units
from lerobot_wds.reader.scheduling.windows import (
    SARM_DELTA_INDICES,
    clamp_window,
    delta_indices,
    preset_delta_timestamps,
    query_positions,
)


def _shards(sizes: list[list[int]]) -> list[ShardInfo]:
    """Manifest entries (v2) with these episode frame counts; byte offsets and digests play no part in planning."""
    out, ep = [], 0
    for si, frames in enumerate(sizes):
        extents = [EpisodeExtent(ep + k, f, 1024 * k, 1024, "0" * 64) for k, f in enumerate(frames)]
        episodes = [e.episode for e in extents]
        out.append(ShardInfo(f"s{si}", 1024 * len(frames), "0" * 64, episodes, sum(frames), extents))
        ep += len(frames)
    return out


SHARDS = _shards([[30, 10], [25], [5, 40, 15], [20], [35, 12, 8]])
TOTAL = 200


def _anchors(plan) -> Counter:
    return Counter(
        (seg.ref.episode, a)
        for rank in plan
        for slot in rank
        for seg in slot.segments
        for a in range(seg.lo, seg.hi)
    )


def test_plan_yields_every_anchor_once_with_equal_quota() -> None:
    for world, workers in [(1, 1), (2, 2), (3, 1), (2, 5), (7, 9), (1, 200)]:
        plan = plan_epoch(SHARDS, seed=7, epoch=3, shuffle=True, world_size=world, num_workers=workers)
        got = _anchors(plan)
        assert sum(got.values()) == TOTAL and set(got.values()) == {1}  # every anchor in exactly one reader
        frames = [slot.frames for rank in plan for slot in rank]
        assert max(frames) - min(frames) <= 1  # balanced within one frame: pad repeats at most one per reader
        assert {slot.quota for rank in plan for slot in rank} == {max(frames)}
        assert len({sum(s.quota for s in rank) for rank in plan}) == 1


def test_plan_keeps_runs_of_a_shard_together() -> None:
    plan = plan_epoch(SHARDS, seed=2, epoch=0, shuffle=True, world_size=2, num_workers=2)
    for rank in plan:
        for slot in rank:
            segs = slot.segments
            # consecutive segments of one shard are consecutive episodes: one read per run
            for a, b in zip(segs, segs[1:], strict=False):
                if a.ref.shard == b.ref.shard:
                    assert b.ref.position == a.ref.position + 1 and a.hi == a.ref.frames and b.lo == 0
    unshuffled = plan_epoch(SHARDS, seed=2, epoch=0, shuffle=False, world_size=1, num_workers=2)
    order = [(s.ref.episode, s.lo, s.hi) for slot in unshuffled[0] for s in slot.segments]
    assert order[:3] == [(0, 0, 30), (1, 0, 10), (2, 0, 25)] and order[3] == (3, 0, 5)
    assert (4, 0, 30) in order and (4, 30, 40) in order  # episode 4 split between the two workers at 100 frames


def test_plan_trim_uses_smallest_slot_and_is_identical_on_every_call() -> None:
    a = plan_epoch(SHARDS, seed=1, epoch=0, shuffle=True, world_size=3, num_workers=1, uneven="trim")
    b = plan_epoch(list(SHARDS), seed=1, epoch=0, shuffle=True, world_size=3, num_workers=1, uneven="trim")
    assert a == b
    assert a[0][0].quota == min(s.frames for r in a for s in r) == 66
    assert [sum(slot.quota for slot in rank) for rank in a] == [66, 66, 66]  # every rank yields the same


def test_epoch_sequence_depends_on_seed_and_epoch_only() -> None:
    e0 = epoch_sequence(SHARDS, 5, 0, True)
    assert e0 == epoch_sequence(SHARDS, 5, 0, True)
    assert e0 != epoch_sequence(SHARDS, 5, 1, True)
    assert e0 != epoch_sequence(SHARDS, 6, 0, True)
    assert [e.episode for e in epoch_sequence(SHARDS, 5, 0, False)] == list(range(10))


def test_plan_errors() -> None:
    with pytest.raises(ValueError, match="the dataset has 200 frames, fewer than 3 ranks x 70 workers = 210"):
        plan_epoch(SHARDS, seed=0, epoch=0, shuffle=False, world_size=3, num_workers=70)
    with pytest.raises(ValueError, match="uneven='wrap'.*'pad', 'trim'"):
        plan_epoch(SHARDS, seed=0, epoch=0, shuffle=False, world_size=1, num_workers=1, uneven="wrap")  # type: ignore[arg-type]


def test_query_positions_clamp_and_pad_like_lerobot() -> None:
    pos, pad = query_positions(1, 5, (-2, -1, 0, 3, 4))
    assert pos == [0, 0, 1, 4, 4]
    assert pad == [True, False, False, False, True]


def test_delta_indices_validation() -> None:
    assert delta_indices({"a": [-0.1, 0.0, 0.2]}, 10, ["a"], 1e-4) == {"a": (-1, 0, 2)}
    with pytest.raises(ValueError, match=r"\['zz'\] are not features"):
        delta_indices({"zz": [0.0]}, 10, ["a"], 1e-4)
    with pytest.raises(ValueError, match="not multiples of 1/10"):
        delta_indices({"a": [0.05]}, 10, ["a"], 1e-4)


def test_sarm_preset() -> None:
    assert len(SARM_DELTA_INDICES) == 13
    dt = preset_delta_timestamps("sarm", ["cam"], 30)
    assert set(dt) == {"cam", "observation.state"}
    assert [round(d * 30) for d in dt["cam"]] == list(SARM_DELTA_INDICES)
    assert preset_delta_timestamps("single", ["cam"], 30) is None
    with pytest.raises(ValueError, match="expected one of"):
        preset_delta_timestamps("nope", ["cam"], 30)  # type: ignore[arg-type]


def test_lru_cache_counts_and_bounds_cost() -> None:
    cache: LruCache[bytes] = LruCache(10, cost=len)
    cache.put(("a", 1), b"xxxx")
    cache.put(("a", 2), b"yyyy")
    assert cache.get(("a", 1)) == b"xxxx"
    cache.put(("b", 1), b"zzzz")  # 12 > 10: evicts least recently used ("a", 2)
    assert cache.get(("a", 2)) is None
    st = cache.stats()
    assert (st.hits, st.misses, st.evictions, st.size, st.cost) == (1, 1, 1, 2, 8)
    assert cache.drop_group("a") == 1
    assert cache.stats().cost == 4 and cache.stats().evictions == 1


def test_lru_cache_on_evict_sees_evictions_only() -> None:
    evicted: list[tuple[object, str]] = []
    cache: LruCache[str] = LruCache(2, on_evict=lambda k, v: evicted.append((k, v)))
    cache.put(("g", 1), "one")
    cache.put(("g", 2), "two")
    cache.put(("g", 3), "three")  # evicts ("g", 1)
    cache.discard(("g", 2))
    assert evicted == [(("g", 1), "one")]
    assert cache.peek(("g", 3)) == "three" and cache.stats().hits == 0 and cache.stats().misses == 0
    assert list(cache.values()) == ["three"]
    cache.clear()
    assert len(cache) == 0 and cache.stats().cost == 0 and evicted == [(("g", 1), "one")]


def test_shuffle_buffer_is_a_permutation_and_deterministic() -> None:
    items = list(range(100))
    a = list(shuffle_buffer(items, 10, random.Random(1)))
    assert sorted(a) == items and a != items
    assert a == list(shuffle_buffer(items, 10, random.Random(1)))
    assert list(shuffle_buffer(items, 10, None)) == items


def _fake_episode(index: int, length: int, cams=("a", "b")) -> SimpleNamespace:
    meta = SimpleNamespace(cameras={c: SimpleNamespace(width=4, height=2) for c in cams})
    return SimpleNamespace(
        index=index,
        length=length,
        meta=meta,
        videos={c: b"x" * 100 for c in cams},
        anchors=None,
        order=None,
        anchor_range=(0, length),
    )


class _Gops:
    """Stands in for FramePool's GOPs and budget: GOPs of length ``g`` from ``phase`` (planning needs no video),
    a frame budget of ``budget`` bytes (None: automatic)."""

    def __init__(self, g: int, phase: int = 0, budget: int | None = None) -> None:
        self.g, self.phase = g, phase
        self.budget = FrameBudget(budget)

    def reserve(self, nbytes: int) -> None:
        self.budget.reserve(nbytes)

    def gops(self, visit, camera):
        return list(range(self.phase - self.g if self.phase else 0, visit.episode.length, self.g))


def _check_units(length, deltas, gops, shape):
    got_shape, units = plan_units(length, deltas, gops)
    assert got_shape == shape
    assert sorted(a for u in units for a in u.anchors) == list(range(length))  # each anchor in one unit
    for u in units:
        for cam, ds in deltas.items():
            shown = {f for a in u.anchors for f in clamp_window(a, length, ds)}
            dropped = [f for per in u.drops[cam] for f in per]
            assert sorted(dropped) == sorted(shown) == list(u.needs[cam])  # each needed frame dropped once
            for i in range(len(u.anchors)):  # a frame is dropped at its last use, never before
                later = {f for b in u.anchors[i + 1 :] for f in clamp_window(b, length, ds)}
                assert not set(u.drops[cam][i]) & later
    return units


def test_units_gop_classes_sequential() -> None:
    g2 = {c: list(range(0, 450, 2)) for c in "ab"}
    units = _check_units(450, {"a": (0,), "b": (0,)}, g2, "gop")
    # whole GOPs joined into runs of RUN_FRAMES anchors, each decoded in one call (all alive from its first use)
    assert [len(u.anchors) for u in units] == [8] * 56 + [2]
    assert all(u.peak_frames == {"a": len(u.anchors), "b": len(u.anchors)} for u in units)
    # a unit holds at most half its share of the frame budget: 3 frames' worth of 2 cameras -> single GOPs of 2
    _, small = plan_units(450, {"a": (0,), "b": (0,)}, g2, frame_bytes={"a": 10, "b": 10}, unit_bytes=120)
    assert [len(u.anchors) for u in small] == [2] * 225
    _, four = plan_units(450, {"a": (0,), "b": (0,)}, g2, frame_bytes={"a": 10, "b": 10}, unit_bytes=160)
    assert [len(u.anchors) for u in four] == [4] * 112 + [2]
    sarm = (-120, -90, -60, -30, 0, 30, 60, 90, 120, -30, -60, -90, -120)
    units = _check_units(450, {"a": sarm, "b": (0,)}, g2, "classes")
    assert len(units) == 15  # 30 residues in 15 keyframe-aligned pairs
    assert all(len({a % 30 for a in u.anchors}) == 2 and {a % 2 for a in u.anchors} == {0, 1} for u in units)
    # ascending anchors keep only the window span alive: 9 positions x 2 residues + the clamped edges
    assert max(u.peak_frames["a"] for u in units) <= 9 * 2 + 2 and max(u.peak_frames["b"] for u in units) == 2
    # a GOP longer than RUN_FRAMES: one residue per unit, served ascending while the decoder steps forward,
    # so a unit holds its window's 9 positions (+ the clamped edges) whatever the GOP
    units = _check_units(450, {"a": sarm, "b": sarm}, {c: list(range(0, 450, 60)) for c in "ab"}, "residues")
    assert len(units) == 30 and all(len({a % 30 for a in u.anchors}) == 1 for u in units)
    assert max(u.peak_frames["a"] for u in units) <= 9 + 2
    # irregular GOPs, one of them long (9 -> 30): residues too; irregular short GOPs or a contiguous window:
    # one sequential unit
    _check_units(100, {"a": (-30, 0), "b": (0,)}, {c: [0, 2, 5, 9, 30, 31] for c in "ab"}, "residues")
    _check_units(100, {"a": (-30, 0), "b": (0,)}, {c: [0, 2, 5, *range(9, 100, 6)] for c in "ab"}, "sequential")
    units = _check_units(
        100, {"a": tuple(range(10)), "b": (0,)}, {c: list(range(0, 100, 2)) for c in "ab"}, "sequential"
    )
    assert units[0].peak_frames["a"] <= 12  # the 10-frame window (+ one GOP), not the episode


@pytest.mark.parametrize("lead_in", [0, 37])
def test_units_over_long_gops_hold_a_window_not_a_gop(lead_in: int) -> None:
    """GOP 250 (x264 -g 250), episodes starting mid-GOP: single holds one frame per camera, sarm its window."""
    gops = {c: list(range(-lead_in, 600, 250)) for c in "ab"}
    shape, units = plan_units(600, {"a": (0,), "b": (0,)}, gops, descending=[True])
    assert shape == "gop" and all(u.peak_frames == {"a": 1, "b": 1} for u in units)
    assert all(list(u.anchors) == sorted(u.anchors) for u in units)  # never descending: the decoder steps forward
    assert sorted(a for u in units for a in u.anchors) == list(range(600))
    sarm = (-120, -90, -60, -30, 0, 30, 60, 90, 120, -30, -60, -90, -120)
    units = _check_units(600, {"a": sarm, "b": sarm}, gops, "residues")
    assert all(list(u.anchors) == sorted(u.anchors) for u in units)
    assert max(u.peak_frames["a"] for u in units) <= 9 + 2
    # a unit whose share of the budget holds two residues' windows serves two: half the passes over the episode
    sizes = {"a": 10, "b": 10}
    _, two = plan_units(600, {"a": sarm, "b": sarm}, gops, frame_bytes=sizes, unit_bytes=2 * 11 * 20)
    assert len(two) == 15 and all(len({a % 30 for a in u.anchors}) == 2 for u in two)
    assert max(u.peak_frames["a"] for u in two) <= 2 * (9 + 2)


def test_units_descending_and_lead_in_gops() -> None:
    gops = {"a": list(range(-1, 90, 2))}  # keyframes at odd episode frames (a lead-in frame before frame 0)
    shape, units = plan_units(90, {"a": (-30, 0, 30)}, gops, descending=[True])
    assert shape == "classes" and all(list(u.anchors) == sorted(u.anchors, reverse=True) for u in units)
    for u in units:  # GOPs are (odd, odd + 1): a unit holds both frames of each of its GOPs
        assert all(a + 1 in u.anchors for a in u.anchors if a % 2 == 1 and a + 1 < 90)


def _memory(active: int, open_bytes: int, frame_budget: int, target: int = 1) -> Admission:
    bounds = PoolBounds(active=active, target=target, open_bytes=open_bytes, memory=10**12)
    return Admission(bounds, _Gops(2, budget=frame_budget))


def test_schedule_yields_every_anchor_once_within_bounds() -> None:
    eps = [_fake_episode(i, n) for i, n in enumerate([50, 0, 33, 71, 1, 20])]
    deltas = {"a": (-10, 0, 10), "b": (0,)}
    for rng in (None, random.Random(3)):
        out = list(schedule(eps, memory=_memory(3, 10**9, 10**9), deltas=deltas, rng=rng))
        assert Counter((a.episode.index, a.frame) for a in out) == Counter(
            (e.index, k) for e in eps for k in range(e.length)
        )
        last = {a.visit.vid: i for i, a in enumerate(out)}
        assert [i for i, a in enumerate(out) if a.last] == sorted(last.values())  # last flag = final anchor
    seq = list(schedule(eps, memory=_memory(3, 1, 1), deltas=deltas, rng=None))
    assert [(a.episode.index, a.frame) for a in seq] == [(e.index, k) for e in eps for k in range(e.length)]


def test_schedule_mixes_all_open_episodes_and_respects_budgets() -> None:
    eps = [_fake_episode(i, 60) for i in range(20)]
    deltas = {"a": (0,), "b": (0,)}
    out = list(
        schedule(
            eps,
            memory=_memory(64, 10**9, 10**9, target=24),
            deltas=deltas,
            rng=random.Random(0),
            batch=16,
        )
    )
    batches = [out[i : i + 16] for i in range(0, 16 * 60, 16)]
    distinct = [len({a.episode.index for a in b}) for b in batches]
    # every batch from distinct open episodes while there are 16 (i.i.d. over 20 equal episodes gives 11.1)
    assert distinct[:-4] == [16] * (len(distinct) - 4) and min(distinct) >= 10
    # the open-bytes bound: 2 videos x 100 bytes per episode, 400 bytes -> at most 2 open at once
    out = list(
        schedule(
            eps,
            memory=_memory(64, 400, 10**9),
            deltas=deltas,
            rng=random.Random(0),
        )
    )
    spans = {}
    for i, a in enumerate(out):
        spans.setdefault(a.visit.vid, [i, i])[1] = i
    assert max(sum(lo <= i <= hi for lo, hi in spans.values()) for i in range(len(out))) == 2  # open at once
    # the frame budget: a unit's planned peak is 2 frames x 2 cameras x 24 bytes = 96 bytes per episode
    out = list(schedule(eps, memory=_memory(64, 10**9, 96), deltas=deltas, rng=random.Random(0)))
    assert all(len({a.episode.index for a in out[i : i + 60]}) == 1 for i in range(0, len(out), 60))


def test_cycle() -> None:
    it = cycle_passes(lambda p: [(p, 0), (p, 1)], "x")
    assert [next(it) for _ in range(5)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    with pytest.raises(ValueError, match="x: a full pass"):
        next(cycle_passes(lambda p: [], "x"))


def test_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Topology(1, 2, 1, 3).slot == 4
    with pytest.raises(ValueError, match="rank 2 must be in"):
        Topology(2, 2)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert detect_rank_world() == (1, 4)
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ValueError, match="only one of"):
        detect_rank_world()


def test_float_conversion_is_bit_exact_with_lerobots_torch_expression() -> None:
    import numpy as np
    import torch

    from lerobot_wds.reader.assembling.sample import to_output_images

    values = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    ours = to_output_images(values, return_uint8=False)
    theirs = (torch.from_numpy(values) / 255.0).type(torch.float32)
    assert ours.dtype == torch.float32 and torch.equal(ours, theirs)
    assert to_output_images(values, return_uint8=True).dtype == torch.uint8


def test_loader_consumed_follows_round_robin_and_caps_at_quota() -> None:
    from lerobot_wds.reader.planning.resume import loader_consumed

    # 7 batches of 4 from 3 workers: workers 0,1,2,0,1,2,0 -> 3, 2, 2 batches
    assert loader_consumed(7, 4, 3, quota=100) == {0: 12, 1: 8, 2: 8}
    assert loader_consumed(0, 4, 3, quota=100) == {0: 0, 1: 0, 2: 0}
    assert loader_consumed(9, 4, 1, quota=30) == {0: 30}  # the last batch of the epoch was short


def test_merge_state_accumulates_ranks_and_workers_of_one_epoch_and_rejects_foreign_states() -> None:
    from lerobot_wds.reader.planning.resume import make_state, merge_state

    a = merge_state(None, make_state(5, 2, {0: 8}, 2, 2, rank=0, delivered={0: b"x"}), seed=5)
    b = merge_state(a, make_state(5, 2, {1: 4}, 2, 2, rank=1, delivered={1: b"y"}), seed=5)
    assert (b.epoch, b.world_size, b.num_workers, b.base) == (2, 2, 2, None)
    assert b.consumed == {(0, 0): 8, (1, 1): 4} and b.delivered == {(0, 0): b"x", (1, 1): b"y"}
    c = merge_state(b, make_state(5, 3, {1: 1}, 2, 2), seed=5)
    assert c.epoch == 3 and c.consumed == {(0, 1): 1}
    with pytest.raises(ValueError, match="come from different plans"):
        merge_state(c, make_state(5, 3, {1: 1}, 4, 2), seed=5)
    with pytest.raises(ValueError, match="seed 4"):
        merge_state(None, make_state(4, 0, {}), seed=5)
    with pytest.raises(ValueError, match="version"):
        merge_state(None, {**make_state(5, 0, {}), "version": 99}, seed=5)


def test_residue_units_halve_the_alive_frames_when_pairs_do_not_fit() -> None:
    g2 = {c: list(range(0, 450, 2)) for c in "ab"}
    sarm = {"a": SARM_DELTA_INDICES, "b": SARM_DELTA_INDICES}
    big = {"a": 640 * 480 * 3, "b": 640 * 480 * 3}
    shape, pairs = plan_units(450, sarm, g2, frame_bytes=big, unit_bytes=100 * 640 * 480 * 3)
    assert shape == "classes" and max(u.peak_frames["a"] for u in pairs) == 18
    shape, units = plan_units(450, sarm, g2, frame_bytes=big, unit_bytes=(512 << 20) // 24)
    assert shape == "residues" and len(units) == 30
    assert sorted(a for u in units for a in u.anchors) == list(range(450))
    assert all(len({a % 30 for a in u.anchors}) == 1 for u in units)
    assert max(u.peak_frames["a"] for u in units) == 10  # 9 window positions + a clamped edge
    for u in units:
        shown = {f for a in u.anchors for f in clamp_window(a, 450, SARM_DELTA_INDICES)}
        assert sorted(f for per in u.drops["a"] for f in per) == sorted(shown) == list(u.needs["a"])


def test_the_frame_budget_is_the_users_or_grows_to_the_target() -> None:
    auto, fixed = FrameBudget(), FrameBudget(1000)
    base = auto.base
    assert auto.admits(base, below_target=False) and not auto.admits(base + 1, below_target=False)
    assert auto.admits(3 * base, below_target=True)  # the mixing target is admitted past the default
    auto.reserve(3 * base)
    auto.reserve(2 * base)
    assert (auto.reserved, auto.capacity) == (3 * base, 3 * base)
    assert not fixed.admits(1001, below_target=True)  # a user's budget holds, target or not
    fixed.reserve(5000)
    assert (fixed.base, fixed.capacity) == (1000, 1000)
