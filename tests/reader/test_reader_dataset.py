"""End-to-end reader tests on factory-built roots: order, identities, windows, shuffle, splitting, resume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.testing.shards import ACTION_DIM, RootSpec, read_identity, state_value

SPEC = RootSpec()
CAMS = list(SPEC.cameras)
ALL = [(e, k) for e, n in enumerate(SPEC.lengths) for k in range(n)]


def ids(samples: list[dict]) -> list[tuple[int, int]]:
    return [(int(s["episode_index"]), int(s["frame_index"])) for s in samples]


def check_frame(sample: dict, ep: int, frame: int) -> None:
    """Asserts the sample's rows and every camera image belong to (episode, frame)."""
    assert (int(sample["episode_index"]), int(sample["frame_index"])) == (ep, frame)
    assert sample["observation.state"].tolist() == state_value(ep, frame)
    for ci, cam in enumerate(CAMS):
        assert read_identity(sample[cam]) == (ep, frame, ci)


def test_unshuffled_yields_every_frame_in_order_with_exact_values(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(str(wds_root), shuffle=False)
    samples = list(ds)
    assert ids(samples) == ALL
    start = 0
    for s in samples:
        ep, k = int(s["episode_index"]), int(s["frame_index"])
        check_frame(s, ep, k)
        assert int(s["index"]) == sum(SPEC.lengths[:ep]) + k
        assert s["timestamp"].dtype == torch.float32 and s["timestamp"].item() == pytest.approx(k / SPEC.fps)
        assert s["action"].shape == (ACTION_DIM,) and s["action"].dtype == torch.float32
        assert s["task"] == SPEC.tasks[ep % 2] and int(s["task_index"]) == ep % 2
        for cam in CAMS:
            assert s[cam].shape == (3, SPEC.height, SPEC.width) and s[cam].dtype == torch.float32
            assert 0.0 <= s[cam].min() and s[cam].max() <= 1.0
        start += 1
    assert set(samples[0]) == {
        *CAMS,
        "observation.state",
        "action",
        "timestamp",
        "frame_index",
        "episode_index",
        "index",
        "task_index",
        "task",
    }


def test_lead_in_and_trail_frames_are_skipped(wds_root_padded: Path) -> None:
    samples = list(LeRobotWdsDataset(str(wds_root_padded), shuffle=False))
    assert ids(samples) == [(e, k) for e, n in enumerate((9, 5, 12, 7)) for k in range(n)]
    for s in samples:
        check_frame(s, int(s["episode_index"]), int(s["frame_index"]))


def test_return_uint8_matches_float(wds_root: Path) -> None:
    f = next(iter(LeRobotWdsDataset(str(wds_root), shuffle=False)))
    u = next(iter(LeRobotWdsDataset(str(wds_root), shuffle=False, return_uint8=True)))
    for cam in CAMS:
        assert u[cam].dtype == torch.uint8
        assert torch.equal((u[cam] / 255.0).type(torch.float32), f[cam])


def test_windows_clamp_and_pad_like_lerobot(wds_root_padded: Path) -> None:
    dt = {CAMS[0]: [-0.3, -0.1, 0.0, 0.2], "observation.state": [-0.2, 0.0, 0.1, 0.5], CAMS[1]: [0.1]}
    ds = LeRobotWdsDataset(str(wds_root_padded), delta_timestamps=dt, shuffle=False)
    lengths = (9, 5, 12, 7)
    for s in ds:
        ep, k = int(s["episode_index"]), int(s["frame_index"])
        n = lengths[ep]
        cam0 = s[CAMS[0]]
        assert cam0.shape == (4, 3, 48, 64)
        want = [min(n - 1, max(0, k + d)) for d in (-3, -1, 0, 2)]
        assert [read_identity(cam0[i])[:2] for i in range(4)] == [(ep, w) for w in want]
        assert s[f"{CAMS[0]}_is_pad"].tolist() == [not 0 <= k + d < n for d in (-3, -1, 0, 2)]
        # one-delta camera window: lerobot squeezes the time axis
        assert s[CAMS[1]].shape == (3, 48, 64)
        assert read_identity(s[CAMS[1]]) == (ep, min(n - 1, k + 1), 1)
        assert s[f"{CAMS[1]}_is_pad"].tolist() == [k + 1 >= n]
        st = [min(n - 1, max(0, k + d)) for d in (-2, 0, 1, 5)]
        assert s["observation.state"].shape == (4, 3)
        assert s["observation.state"].tolist() == [state_value(ep, w) for w in st]
        assert s["observation.state_is_pad"].dtype == torch.bool


def test_sarm_preset_shapes(wds_root: Path) -> None:
    s = next(iter(LeRobotWdsDataset(str(wds_root), preset="sarm", shuffle=False)))
    for cam in CAMS:
        assert s[cam].shape == (13, 3, 48, 64)
        assert s[f"{cam}_is_pad"].shape == (13,)
    assert s["observation.state"].shape == (13, 3)
    # fps 10: every SARM step except 0 is >= 3 s away, outside these short episodes
    assert s["observation.state_is_pad"].tolist() == [True] * 4 + [False] + [True] * 8


def test_shuffle_is_a_deterministic_permutation_per_seed_and_epoch(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(str(wds_root), seed=3)
    e0 = list(ds)
    assert sorted(ids(e0)) == ALL and ids(e0) != ALL
    for s in e0[:20]:
        check_frame(s, int(s["episode_index"]), int(s["frame_index"]))
    assert ids(list(LeRobotWdsDataset(str(wds_root), seed=3))) == ids(e0)
    ds.set_epoch(1)
    e1 = ids(list(ds))
    assert sorted(e1) == ALL and e1 != ids(e0)
    assert ids(list(LeRobotWdsDataset(str(wds_root), seed=4))) != ids(e0)


def _loader_ids(ds: LeRobotWdsDataset, workers: int, **kw) -> list[tuple[int, int]]:
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, **kw)
    return ids(list(loader))


@pytest.mark.parametrize("uneven", ["pad", "trim"])
def test_ranks_and_workers_cover_every_anchor_with_equal_counts(wds_root: Path, uneven: str) -> None:
    per_rank = []
    for rank in range(2):
        ds = LeRobotWdsDataset(str(wds_root), seed=1, rank=rank, world_size=2, uneven=uneven)  # type: ignore[arg-type]
        got = _loader_ids(ds, workers=2)
        assert len(got) == ds.samples_per_rank(num_workers=2)
        per_rank.append(got)
    assert len(per_rank[0]) == len(per_rank[1])
    counts = Counter(per_rank[0] + per_rank[1])
    if uneven == "pad":
        assert set(counts) == set(ALL)  # every anchor at least once
        assert sum(counts.values()) - len(ALL) == sum(c - 1 for c in counts.values())
    else:
        assert set(counts) <= set(ALL) and all(c == 1 for c in counts.values())


def test_balanced_split_yields_every_anchor_exactly_once(tmp_path: Path) -> None:
    from lerobot_wds.testing.shards import make_root

    lengths = (6, 5, 6, 7)
    make_root(tmp_path, RootSpec(lengths=lengths, episodes_per_shard=1, cameras=("observation.images.c",)))
    seen: list[tuple[int, int]] = []
    per_rank = []
    for rank in range(2):
        ds = LeRobotWdsDataset(str(tmp_path), seed=9, rank=rank, world_size=2, uneven="trim")
        got = _loader_ids(ds, workers=1)
        per_rank.append(len(got))
        seen += got
    # 4 shards on 2 ranks x 1 worker, balanced 12/12 frames: no repeat, nothing trimmed
    assert per_rank == [12, 12]
    assert sorted(seen) == [(e, k) for e, n in enumerate(lengths) for k in range(n)]


def test_set_epoch_reaches_persistent_workers(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(str(wds_root), seed=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    e0 = ids(list(loader))
    ds.set_epoch(1)
    e1 = ids(list(loader))
    ref = LeRobotWdsDataset(str(wds_root), seed=2)
    ref.set_epoch(1)
    assert e1 == _loader_ids(ref, workers=2) and e1 != e0
    assert set(e0) == set(e1) == set(ALL)  # padding repeats may differ per epoch


def test_resume_in_process_continues_exactly(wds_root: Path) -> None:
    full = ids(list(LeRobotWdsDataset(str(wds_root), seed=5)))
    ds = LeRobotWdsDataset(str(wds_root), seed=5)
    it = iter(ds)
    head = [next(it) for _ in range(23)]
    state = ds.state_dict()
    assert state["consumed"] == {"0": 23}
    resumed = LeRobotWdsDataset(str(wds_root), seed=5)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert ids(head) + ids(rest) == full
    check_frame(rest[0], *ids(rest)[:1][0])


def test_resume_with_plain_dataloader_workers(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(str(wds_root), seed=6)
    ds.set_epoch(2)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2)
    batches = [b["index"].tolist() for b in loader]
    seen = 5
    state = ds.loader_state_dict(batches_seen=seen, batch_size=3, num_workers=2)
    resumed = LeRobotWdsDataset(str(wds_root), seed=6)
    resumed.load_state_dict(state)
    rest = [b["index"].tolist() for b in torch.utils.data.DataLoader(resumed, batch_size=3, num_workers=2)]
    # the loader restarts its round-robin at worker 0; the state's rotation makes worker 0 continue the
    # reader the interrupted run's next batch came from: the very same batches, in the same order
    assert state["rotation"] == 1
    assert rest == batches[seen:]


def test_resume_at_end_of_epoch_then_next_epoch(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(str(wds_root), seed=8)
    ds.set_epoch(4)
    assert len(list(ds)) == 78
    state = ds.state_dict()
    assert state["epoch"] == 4 and state["consumed"] == {"0": 78}
    resumed = LeRobotWdsDataset(str(wds_root), seed=8)
    resumed.load_state_dict(state)
    assert list(resumed) == []  # the saved epoch is complete
    resumed.set_epoch(5)
    ref = LeRobotWdsDataset(str(wds_root), seed=8)
    ref.set_epoch(5)
    assert ids(list(resumed)) == ids(list(ref))
    with pytest.raises(ValueError, match="saved with seed 8, this dataset has seed 9"):
        LeRobotWdsDataset(str(wds_root), seed=9).load_state_dict(state)
