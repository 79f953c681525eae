"""Every decode-unit shape, on every codec, in shuffled order: each anchor once, every window frame right.

Identity-coded frames (``tools.synth``: each frame carries its episode and frame index) encoded with ffmpeg as
AV1 GOP 2, H.264 and HEVC with B-frames and long GOPs (30), and H.264 / HEVC with B-frames and GOP 4 (so the
keyframe-aligned residue classes are used with B-frame reordering), converted, then read shuffled: the
scheduler's units (GOP, residue classes, sequential) come out of the cost model per codec.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.reader.decoding.decode import DecodeConfig
from lerobot_wds.reader.decoding.frames import FramePool, Visit
from lerobot_wds.reader.scheduling.shapes import choose_shape
from lerobot_wds.testing.synth import CAMS_2, LeRobotSpec, make_dataset, make_variant, read_identity_full

WINDOWS = {
    "single": None,
    "stride8": (-16, -8, 0, 8, 16, -8),  # SARM-like: steps of 8 frames, both sides, a rewind step
    "contiguous": (-2, -1, 0),
}
CUSTOM = {
    "h264_gop4": LeRobotSpec(codec="h264", cameras=CAMS_2, episode_lengths=(6, 31, 13), gop=4, bframes=2),
    "hevc_gop4": LeRobotSpec(codec="hevc", cameras=CAMS_2, episode_lengths=(9, 22), gop=4, bframes=2),
}


@pytest.fixture(scope="module", params=["av1", "h264_bframes", "hevc", *CUSTOM])
def converted(request, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp(f"sched_{request.param}")
    if request.param in CUSTOM:
        fixture = make_dataset(CUSTOM[request.param], base / "src", name=request.param)
    else:
        fixture = make_variant(request.param, base / "src")
    dest = base / "wds"
    convert(ConvertConfig(source=str(fixture.root), dest=str(dest), target_shard_bytes=30_000, progress=False))
    return dest


@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.parametrize("batch_size", [None, 5])
def test_shuffled_units_deliver_each_anchor_once_with_right_frames(
    converted: Path, window: str, batch_size: int | None
) -> None:
    probe = LeRobotWdsDataset(str(converted), shuffle=False)
    cams, fps = list(probe.camera_keys), probe.fps
    offsets = WINDOWS[window]
    deltas = {c: [d / fps for d in offsets] for c in cams} if offsets else None
    ds = LeRobotWdsDataset(
        str(converted), delta_timestamps=deltas, seed=9, return_uint8=True, batch_size=batch_size
    )
    lengths = {
        e: n for s in ds.manifest.shards for e, n in zip(s.episodes, [x.frames for x in s.extents], strict=True)
    }
    seen: Counter[tuple[int, int]] = Counter()
    order = []
    for item in ds:
        rows = (
            [item]
            if batch_size is None
            else [{k: v[i] for k, v in item.items() if k != "task"} for i in range(len(item["frame_index"]))]
        )
        for row in rows:
            ep, fr = int(row["episode_index"]), int(row["frame_index"])
            seen[(ep, fr)] += 1
            order.append((ep, fr))
            for ci, cam in enumerate(cams):
                frames = row[cam] if offsets else row[cam][None]
                for d, img, pad in zip(
                    offsets or (0,), frames, row.get(f"{cam}_is_pad", [False] * 99), strict=False
                ):
                    want = min(lengths[ep] - 1, max(0, fr + d))
                    assert read_identity_full(img) == (ep, want, ci), f"{cam} anchor {(ep, fr)} delta {d}"
                    assert bool(pad) == (not 0 <= fr + d < lengths[ep])
    assert seen == Counter({(e, k): 1 for e, n in lengths.items() for k in range(n)})
    assert order != sorted(order)  # shuffled
    stats = ds.stats()
    assert stats["frames"]["evictions"] == 0 and stats["frames"]["cost"] == 0


def test_cost_model_uses_residue_classes_with_short_gops_and_b_frames(converted: Path) -> None:
    ds = LeRobotWdsDataset(str(converted), shuffle=False)
    name = converted.parent.name
    frames = FramePool()
    ep = next(iter(_episodes(ds)))
    visit = Visit(ep, 0)
    gops = {c: frames.gops(visit, c) for c in ds.camera_keys}
    deltas = {c: WINDOWS["stride8"] for c in ds.camera_keys}
    shape = choose_shape(deltas, gops, ep.length)
    if "gop4" in name or "av1" in name:  # GOP 2 or 4 divides the stride 8
        assert shape == "classes", (name, gops)
    else:  # GOP 30: longer than the stride
        assert shape == "sequential", (name, gops)
    frames.release(visit)


def _episodes(ds: LeRobotWdsDataset):
    from lerobot_wds.reader.fetching.fetch import fetched_reads
    from lerobot_wds.reader.on_error import ErrorCounter
    from lerobot_wds.reader.parsing.tar_episodes import episodes, tar_samples
    from lerobot_wds.reader.planning.reads import plan_reads
    from lerobot_wds.reader.planning.topology import Topology

    plan = ds.plan(Topology())
    reads = plan_reads(
        plan.segments, {s.path: s for s in ds.manifest.shards}, ds.source, max_bytes=1 << 30, split_first=False
    )
    errors = ErrorCounter()
    return episodes(tar_samples(fetched_reads(reads, ds.stream_config), errors), list(ds.camera_keys), errors)


@pytest.mark.parametrize("batch_size", [None, 5])
def test_residue_units_under_a_tight_budget_deliver_each_anchor_once_with_right_frames(
    converted: Path, batch_size: int | None
) -> None:
    """A budget too small for residue-class pairs makes the cost model serve one residue per unit (GOP 2)."""
    probe = LeRobotWdsDataset(str(converted), shuffle=False)
    cams, fps = list(probe.camera_keys), probe.fps
    height, width, _ = probe.manifest.features[cams[0]]["shape"]
    offsets = WINDOWS["stride8"]
    deltas = {c: [d / fps for d in offsets] for c in cams}
    budget = 24 * 8 * 3 * width * height  # 8 frames per unit for the 24 units of the mixing target
    ds = LeRobotWdsDataset(
        str(converted),
        delta_timestamps=deltas,
        seed=4,
        return_uint8=True,
        batch_size=batch_size,
        decode=DecodeConfig(frame_cache_bytes=budget),
    )
    ep = next(iter(_episodes(ds)))
    frames = FramePool()
    visit = Visit(ep, 0)
    gops = {c: frames.gops(visit, c) for c in cams}
    sizes = {c: 3 * width * height for c in cams}
    shape = choose_shape({c: offsets for c in cams}, gops, ep.length, sizes, budget // 24)
    frames.release(visit)
    lengths = {
        e: n for s in ds.manifest.shards for e, n in zip(s.episodes, [x.frames for x in s.extents], strict=True)
    }
    seen: Counter[tuple[int, int]] = Counter()
    for item in ds:
        n = 1 if batch_size is None else len(item["frame_index"])
        for i in range(n):
            row = item if batch_size is None else {k: v[i] for k, v in item.items() if k != "task"}
            e, fr = int(row["episode_index"]), int(row["frame_index"])
            seen[(e, fr)] += 1
            for ci, cam in enumerate(cams):
                for d, img in zip(offsets, row[cam], strict=True):
                    assert read_identity_full(img) == (e, min(lengths[e] - 1, max(0, fr + d)), ci)
    assert seen == Counter({(e, k): 1 for e, n in lengths.items() for k in range(n)})
    name = converted.parent.name
    if "av1" in name:  # GOP 2: one residue per unit halves the frames alive
        assert shape == "residues", (name, gops)
    elif "gop4" in name:  # GOP 4: a residue would cost 2.5 decodes per frame, the pairs stay
        assert shape == "classes", (name, gops)
    stats = ds.stats()
    assert stats["frames"]["evictions"] == 0 and stats["frames"]["cost"] == 0
