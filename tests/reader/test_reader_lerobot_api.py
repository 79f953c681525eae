"""lerobot's dataset API on the reader: ``meta``, ``num_frames`` / ``num_episodes``, ``episodes=``, transforms.

The conformance half (``meta`` equal to lerobot's ``LeRobotDatasetMetadata``) is in test_conformance_train.py;
here the lerobot-free :class:`DatasetMeta` is checked against the source's files and remote roots' meta cache.
Data: the "small" fixture (4 episodes of 5, 12, 3, 8 frames; cameras 64x64 and 96x72) converted by our
converter into shards of about two episodes (a v2 manifest: per-episode byte ranges).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.core.errors import FormatError
from lerobot_wds.reader.errors import UnknownEpisodeError
from lerobot_wds.reader.fetching.fetch import StreamConfig
from lerobot_wds.reader.meta import DatasetMeta
from lerobot_wds.testing.synth_identity import read_identity_full

LENGTHS = (5, 12, 3, 8)
CAMS = ["observation.images.front", "observation.images.wrist"]
SHAPES = {"observation.images.front": (3, 64, 64), "observation.images.wrist": (3, 72, 96)}
HAS_LEROBOT = importlib.util.find_spec("lerobot") is not None


@pytest.fixture(scope="module")
def converted_small(small_lerobot_dataset, tmp_path_factory) -> tuple[Path, Path]:
    dest = tmp_path_factory.mktemp("api_small") / "wds"
    convert(
        ConvertConfig(
            source=str(small_lerobot_dataset.root),
            dest=str(dest),
            progress=False,
            target_shard_bytes=40_000,
            workers=1,
        )
    )
    return small_lerobot_dataset.root, dest


@pytest.fixture(scope="module")
def root(converted_small: tuple[Path, Path]) -> str:
    return str(converted_small[1])


def ids(samples: list[dict]) -> list[tuple[int, int]]:
    return [(int(s["episode_index"]), int(s["frame_index"])) for s in samples]


def batch_ids(batches: list[dict]) -> list[tuple[int, int]]:
    return [(int(e), int(f)) for b in batches for e, f in zip(b["episode_index"], b["frame_index"], strict=True)]


def frames_of(episodes: list[int]) -> set[tuple[int, int]]:
    return {(e, k) for e in episodes for k in range(LENGTHS[e])}


# --- episodes= ----------------------------------------------------------------------------------------------


def test_episodes_yields_exactly_those_episodes(root: str) -> None:
    chosen = [3, 1]
    ds = LeRobotWdsDataset(root, episodes=chosen, seed=3)
    got = ids(list(ds))
    assert sorted(got) == sorted(frames_of(chosen))  # every frame once, nothing else
    assert ds.num_frames == sum(LENGTHS[e] for e in chosen) == len(got)
    assert ds.num_episodes == 2 and ds.episodes == chosen
    full = LeRobotWdsDataset(root)
    assert (full.num_frames, full.num_episodes) == (sum(LENGTHS), len(LENGTHS)) == (28, 4)


def test_episodes_split_across_ranks_and_workers(root: str) -> None:
    chosen = [0, 2, 3]
    per_rank: list[list[tuple[int, int]]] = []
    for rank in range(2):
        ds = LeRobotWdsDataset(root, episodes=chosen, rank=rank, world_size=2, uneven="trim", batch_size=4)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        per_rank.append(batch_ids(list(loader)))
        assert len(per_rank[-1]) == ds.samples_per_rank(num_workers=2)
    assert len(per_rank[0]) == len(per_rank[1])
    assert not set(per_rank[0]) & set(per_rank[1])
    union = set(per_rank[0]) | set(per_rank[1])
    assert union <= frames_of(chosen)
    total = sum(LENGTHS[e] for e in chosen)
    assert len(union) == len(per_rank[0]) * 2 >= total - 4  # trim drops less than one frame per reader


def test_episodes_unknown_is_rejected(root: str) -> None:
    with pytest.raises(
        UnknownEpisodeError,
        match=r"^episodes: episode 4 and 1 more is not in this root; it holds 4 episodes, indices 0\.\.3$",
    ):
        LeRobotWdsDataset(root, episodes=[1, 4, 42])


# --- image_transforms ---------------------------------------------------------------------------------------


def invert(image: torch.Tensor) -> torch.Tensor:
    """A deterministic transform with exactly known pixels: uint8 255 - x, float 1 - x."""
    return 255 - image if image.dtype == torch.uint8 else 1.0 - image


def test_image_transforms_gives_exact_pixels_per_sample(root: str) -> None:
    plain = list(LeRobotWdsDataset(root, shuffle=False, episodes=[2, 3]))
    seen: list[tuple[int, ...]] = []

    def flip(image: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(image.shape))
        return image.flip(-1)

    flipped = list(LeRobotWdsDataset(root, shuffle=False, episodes=[2, 3], image_transforms=flip))
    assert ids(flipped) == ids(plain)
    assert sorted(seen) == sorted([SHAPES[c] for c in CAMS] * len(plain))  # once per camera per sample
    for a, b in zip(plain, flipped, strict=True):
        for cam in CAMS:
            assert torch.equal(b[cam], a[cam].flip(-1))
            assert read_identity_full(b[cam].flip(-1))[:2] == (int(a["episode_index"]), int(a["frame_index"]))
        assert torch.equal(b["observation.state"], a["observation.state"])


@pytest.mark.parametrize("return_uint8", [False, True])
def test_image_transforms_in_dataset_batches_with_windows(root: str, return_uint8: bool) -> None:
    window = {cam: [-0.2, 0.0] for cam in CAMS}
    opts = dict(shuffle=False, episodes=[0, 3], delta_timestamps=window, return_uint8=return_uint8, batch_size=5)
    plain = list(LeRobotWdsDataset(root, **opts))
    inverted = list(LeRobotWdsDataset(root, image_transforms=invert, **opts))
    assert batch_ids(inverted) == batch_ids(plain) and len(batch_ids(plain)) == 13
    top = 255 if return_uint8 else 1.0
    for a, b in zip(plain, inverted, strict=True):
        for cam in CAMS:
            assert b[cam].shape == (len(a["index"]), 2, *SHAPES[cam])
            assert b[cam].dtype == (torch.uint8 if return_uint8 else torch.float32)
            assert torch.equal(b[cam], top - a[cam])


def test_image_transforms_changing_shape_in_batches_is_an_error(root: str) -> None:
    ds = LeRobotWdsDataset(root, batch_size=2, image_transforms=lambda x: x[..., :8, :8])
    with pytest.raises(
        ValueError, match=r"image_transforms turned camera observation\.images\.front's \(3, 64, 64\)"
    ):
        next(iter(ds))
    with pytest.raises(TypeError, match="image_transforms must be callable"):
        LeRobotWdsDataset(root, image_transforms="flip")  # type: ignore[arg-type]


# --- meta -----------------------------------------------------------------------------------------------------


def check_meta_equals_source(meta: DatasetMeta, src: Path) -> None:
    info = json.loads((src / "meta" / "info.json").read_text())
    stats = json.loads((src / "meta" / "stats.json").read_text())
    assert meta.fps == info["fps"] == 10
    assert meta.camera_keys == meta.video_keys == [k for k, f in info["features"].items() if f["dtype"] == "video"]
    assert len(meta.camera_keys) == 2
    assert (meta.total_episodes, meta.total_frames) == (info["total_episodes"], info["total_frames"]) == (4, 28)
    assert meta.robot_type == info.get("robot_type")
    assert set(meta.features) == set(info["features"])
    for key, ft in info["features"].items():
        assert meta.features[key]["shape"] == tuple(ft["shape"]) and meta.features[key]["dtype"] == ft["dtype"]
    assert meta.stats is not None and set(meta.stats) == set(stats)
    for key, per_stat in stats.items():
        assert set(meta.stats[key]) == set(per_stat)
        for name, value in per_stat.items():
            assert isinstance(meta.stats[key][name], np.ndarray)
            np.testing.assert_array_equal(meta.stats[key][name], np.atleast_1d(np.array(value)))
    assert sorted(meta.tasks.values()) == list(range(len(meta.tasks))) and all(meta.tasks)


def test_meta_reads_the_converted_roots_copy(converted_small: tuple[Path, Path]) -> None:
    src, dest = converted_small
    check_meta_equals_source(DatasetMeta.read(dest), src)
    ds = LeRobotWdsDataset(str(dest))
    assert (ds.num_frames, ds.num_episodes) == (28, 4)
    if not HAS_LEROBOT:
        assert isinstance(ds.meta, DatasetMeta) and ds.meta.root == dest
        check_meta_equals_source(ds.meta, src)


def test_meta_of_a_remote_root_is_fetched_once(converted_small: tuple[Path, Path], s3_bucket, tmp_path) -> None:
    src, dest = converted_small
    url = s3_bucket.url("root")
    s3_bucket.fs.put(str(dest), url, recursive=True)
    stream = StreamConfig(storage_options=s3_bucket.options)
    cache = tmp_path / "cache"
    ds = LeRobotWdsDataset(url, stream=stream, meta_cache_dir=str(cache))
    meta = ds.meta
    (local,) = [p for p in cache.iterdir()]
    assert not local.name.startswith(".partial")
    fetched = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    copied = sorted(p.relative_to(dest).as_posix() for p in (dest / "meta").rglob("*") if p.is_file())
    assert fetched == copied and "meta/info.json" in fetched
    for rel in fetched:
        assert (local / rel).read_bytes() == (dest / rel).read_bytes()
    if not HAS_LEROBOT:
        check_meta_equals_source(meta, src)
    # a second dataset uses the cache: what only meta needs is no longer read from the bucket
    for rel in ("meta/info.json", "meta/stats.json"):
        s3_bucket.fs.rm(f"{url}/{rel}")
    again = LeRobotWdsDataset(url, stream=stream, meta_cache_dir=str(cache)).meta
    assert again.total_frames == 28 and again.camera_keys == meta.camera_keys


def test_meta_missing_is_a_format_error(root: str, tmp_path: Path) -> None:
    copy = tmp_path / "r"
    shutil.copytree(root, copy)
    (copy / "meta" / "info.json").unlink()
    with pytest.raises(FormatError, match=r"meta/info\.json: not found; the converter copies"):
        _ = LeRobotWdsDataset(str(copy)).meta
