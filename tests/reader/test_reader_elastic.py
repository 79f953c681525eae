"""Elastic resume: a mid-epoch state of R x W readers continued on R' x W' readers, every sample exactly once.

Planning is checked as pure functions (every anchor of the remainder planned once, equal quotas); the dataset
path runs real DataLoader workers over a converted root: the old topology's ranks each take some batches and
save ``loader_state_dict``, the new topology loads every rank's state and reads the rest of the epoch. The
ledger of ``index`` values (one per sample) then holds the epoch exactly once, the ``uneven`` rule's repeats
or drops counted exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.reader.errors import ResumeError
from lerobot_wds.reader.planning.elastic import (
    decode_counts,
    decode_pieces,
    encode_counts,
    encode_pieces,
    plan_remainder,
    remainder,
    span,
)
from lerobot_wds.reader.planning.splitting import EpisodeRef, Segment


def _positions(segments: list[Segment]) -> Counter:
    """Every (episode, lo, position) a list of segments plans."""
    out: Counter = Counter()
    for s in segments:
        first, last = span(s)
        out.update((s.ref.episode, s.lo, p) for p in range(first, last))
    return out


def _visits() -> list[Segment]:
    refs = [EpisodeRef("s.tar", e, n, e) for e, n in enumerate((7, 12, 5, 9, 30, 1, 16))]
    return (
        [Segment(r, 0, r.frames) for r in refs[:4]]
        + [Segment(refs[4], 0, 11), Segment(refs[4], 11, 30)]
        + [Segment(r, 0, r.frames) for r in refs[5:]]
    )


@pytest.mark.parametrize("world, workers", [(1, 1), (2, 3), (3, 1), (4, 2), (5, 5)])
@pytest.mark.parametrize("uneven", ["pad", "trim"])
def test_remainder_is_planned_exactly_once_with_equal_quotas(world: int, workers: int, uneven: str) -> None:
    visits = _visits()
    old = [visits[:3], visits[3:5], visits[5:]]  # three readers
    delivered = [[7, 4, 0], [2, 3], [10, 0, 5]]  # whole, partial, untouched visits
    left = remainder(old, delivered)
    want = _positions(visits) - Counter(
        (s.ref.episode, s.lo, p)
        for segs, ns in zip(old, delivered, strict=True)
        for s, n in zip(segs, ns, strict=True)
        for p in range(n)
    )
    assert _positions(left) == want and sum(want.values()) == 49
    plan = plan_remainder(left, world, workers, uneven)  # type: ignore[arg-type]
    slots = [slot for rank in plan for slot in rank]
    assert len(slots) == world * workers
    assert sum((_positions(list(s.segments)) for s in slots), Counter()) == want  # each exactly once
    sizes = [s.frames for s in slots]
    assert max(sizes) - min(sizes) <= 1
    quota = math.ceil(49 / len(slots)) if uneven == "pad" else 49 // len(slots)
    assert {s.quota for s in slots} == {quota}


def test_remainder_records_round_trip_and_bad_bytes_are_one_clear_error() -> None:
    visits = _visits()
    left = remainder([visits], [[3, 12, 0, 9, 11, 0, 0, 2]])
    refs = {s.ref.episode: s.ref for s in visits}
    assert decode_pieces(encode_pieces(left), refs) == left
    assert decode_counts(encode_counts([0, 5, 70000])) == [0, 5, 70000]
    with pytest.raises(ResumeError, match="corrupt"):
        decode_pieces(b"not zlib", refs)
    with pytest.raises(ResumeError, match=r"episodes \[4\] that this root does not hold"):
        decode_pieces(encode_pieces(left), {e: r for e, r in refs.items() if e != 4})
    with pytest.raises(ResumeError, match="5 anchors left, fewer than 2 ranks x 3 workers"):
        plan_remainder(remainder([visits], [[7, 12, 5, 9, 11, 16, 1, 14]]), 2, 3, "pad")


def _take(ds: LeRobotWdsDataset, workers: int, batches: int) -> list[int]:
    out: list[int] = []
    for i, batch in enumerate(DataLoader(ds, batch_size=None, num_workers=workers)):
        if i == batches:
            break
        out += batch["index"].tolist()
    return out


def _epoch(root: Path, world: int, kw: dict) -> int:
    return LeRobotWdsDataset(str(root), rank=0, world_size=world, **kw).num_frames


@pytest.mark.parametrize("uneven", ["pad", "trim"])
@pytest.mark.parametrize("preset", ["single", "sarm"])
@pytest.mark.parametrize("old, new", [((2, 2), (3, 1)), ((1, 1), (2, 3)), ((4, 2), (2, 1)), ((2, 2), (1, 3))])
def test_dataset_resumes_on_another_topology_with_every_sample_exactly_once(
    wds_root: Path, old: tuple[int, int], new: tuple[int, int], preset: str, uneven: str
) -> None:
    kw = dict(preset=preset, seed=7, batch_size=3, uneven=uneven, return_uint8=True)
    frames = _epoch(wds_root, 1, kw)
    before: list[int] = []
    states = []
    for r in range(old[0]):
        ds = LeRobotWdsDataset(str(wds_root), rank=r, world_size=old[0], **kw)
        before += _take(ds, old[1], 2 + r)  # ranks stop at different points of their streams
        states.append(ds.loader_state_dict(2 + r, 3, old[1]))
    assert len(before) == len(set(before))
    after: list[int] = []
    per_rank = []
    for r in range(new[0]):
        ds = LeRobotWdsDataset(str(wds_root), rank=r, world_size=new[0], **kw)
        for state in states:
            ds.load_state_dict(state)
        assert ds.resumes_elastically(new[1])
        got = _take(ds, new[1], 10**6)
        per_rank.append(len(got))
        after += got
    left = frames - len(before)
    slots = new[0] * new[1]
    assert len(set(per_rank)) == 1  # every rank the same number of samples
    ledger = Counter(before + after)
    if uneven == "pad":
        assert len(after) == slots * math.ceil(left / slots)
        assert set(ledger) == set(range(frames))  # nothing lost
        assert sum(ledger.values()) - frames == len(after) - left  # repeats: exactly the padding
        assert not set(before) & set(after)
    else:
        assert len(after) == slots * (left // slots)
        assert max(ledger.values()) == 1  # nothing twice
        assert frames - len(ledger) == left - len(after) < slots  # drops: exactly the trim


def test_same_topology_still_resumes_bit_exactly_and_a_missing_rank_is_one_clear_error(wds_root: Path) -> None:
    kw = dict(preset="single", seed=3, batch_size=2, return_uint8=True)
    full = _take(LeRobotWdsDataset(str(wds_root), rank=1, world_size=2, **kw), 2, 10**6)
    ds = LeRobotWdsDataset(str(wds_root), rank=1, world_size=2, **kw)
    head = _take(ds, 2, 3)
    state = ds.loader_state_dict(3, 2, 2)
    again = LeRobotWdsDataset(str(wds_root), rank=1, world_size=2, **kw)
    again.load_state_dict(state)
    assert not again.resumes_elastically(2)
    assert head + _take(again, 2, 10**6) == full
    other = LeRobotWdsDataset(str(wds_root), rank=0, world_size=3, **kw)
    other.load_state_dict(state)  # rank 1's state only
    with pytest.raises(ResumeError, match="needs every rank's state; missing rank 0 reader 0, rank 0 reader 1"):
        other.resumes_elastically(1)
