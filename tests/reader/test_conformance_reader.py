"""Conformance of the reader against lerobot 0.6.1 itself (Python 3.12 environment with lerobot installed).

A dataset is written by lerobot's own recorder (``LeRobotDataset.create`` / ``add_frame`` / ``save_episode``),
converted by our converter, and read back with shuffle off: every sample must equal
``LeRobotDataset(root, delta_timestamps=same)[index]`` — same keys, dtypes and shapes, images bit-exact,
other values exact — for the "single" and "sarm" presets, 8 steps 1 s apart ending now, and an action chunk
(action 0..9 frames ahead with a short camera history).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.conformance
pytest.importorskip("lerobot")

import torch  # noqa: E402
from lerobot.configs import RGBEncoderConfig  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from lerobot_wds import LeRobotWdsDataset  # noqa: E402
from lerobot_wds.convert.config import ConvertConfig  # noqa: E402
from lerobot_wds.convert.pipeline import convert  # noqa: E402
from lerobot_wds.reader.scheduling.windows import preset_delta_timestamps  # noqa: E402
from lerobot_wds.testing.shards import make_frame  # noqa: E402

FPS = 30
CAMERAS = {"observation.images.front": (64, 64), "observation.images.wrist": (96, 72)}
LENGTHS = (40, 23, 35)
TASKS = ("pick up the cube", "open the drawer", "pick up the cube")
ENCODERS = {"lerobot_default_av1": None, "h264_gop8": {"vcodec": "h264", "g": 8, "crf": 23, "preset": "veryfast"}}
CAMS = list(CAMERAS)


def _windows() -> dict[str, dict[str, list[float]] | None]:
    one_s_steps = [float(s) for s in range(-7, 1)]
    return {
        "single": None,
        "sarm": preset_delta_timestamps("sarm", CAMS, FPS),
        "8x1s": {**{c: one_s_steps for c in CAMS}, "observation.state": one_s_steps},
        "action_chunk": {"action": [k / FPS for k in range(10)], **{c: [-2 / FPS, -1 / FPS, 0.0] for c in CAMS}},
    }


def _write_with_lerobot(root: Path, encoder: dict | None) -> Path:
    features = {
        key: {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
        for key, (w, h) in CAMERAS.items()
    }
    features["observation.state"] = {"dtype": "float32", "shape": (3,), "names": ["s0", "s1", "s2"]}
    features["action"] = {"dtype": "float32", "shape": (2,), "names": ["a0", "a1"]}
    ds = LeRobotDataset.create(
        repo_id="local/reader_conformance",
        fps=FPS,
        features=features,
        root=root,
        use_videos=True,
        image_writer_threads=0,
        rgb_encoder=RGBEncoderConfig(**encoder) if encoder else None,
    )
    for ep, n in enumerate(LENGTHS):
        for k in range(n):
            frame = {key: make_frame(ep, k, ci, w, h) for ci, (key, (w, h)) in enumerate(CAMERAS.items())}
            frame["observation.state"] = torch.tensor([ep * 100.0 + k, k * 0.5, -ep], dtype=torch.float32).numpy()
            frame["action"] = torch.tensor([k / 3.0, ep - k], dtype=torch.float32).numpy()
            frame["task"] = TASKS[ep]
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return root


@pytest.fixture(scope="module", params=sorted(ENCODERS))
def converted(request, tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp(f"reader_conf_{request.param}")
    src = _write_with_lerobot(base / "lerobot", ENCODERS[request.param])
    dest = base / "wds"
    convert(ConvertConfig(source=str(src), dest=str(dest), progress=False, target_shard_bytes=60_000, workers=1))
    return src, dest


def _assert_same(ours: dict, theirs: dict, where: str) -> None:
    assert list(ours) == list(theirs), f"{where}: keys {list(ours)} != lerobot's {list(theirs)}"
    for key, want in theirs.items():
        got = ours[key]
        if isinstance(want, torch.Tensor):
            assert isinstance(got, torch.Tensor), f"{where} {key}: {type(got)} is not a tensor"
            assert got.dtype == want.dtype and got.shape == want.shape, (
                f"{where} {key}: {got.dtype}{tuple(got.shape)} != lerobot's {want.dtype}{tuple(want.shape)}"
            )
            assert torch.equal(got, want), f"{where} {key}: values differ"
        else:
            assert got == want, f"{where} {key}: {got!r} != lerobot's {want!r}"


@pytest.mark.parametrize("window", sorted(_windows()))
def test_every_sample_equals_lerobot(converted: tuple[Path, Path], window: str) -> None:
    src, dest = converted
    delta_timestamps = _windows()[window]
    theirs = LeRobotDataset("local/reader_conformance", root=src, delta_timestamps=delta_timestamps)
    ours = list(LeRobotWdsDataset(str(dest), delta_timestamps=delta_timestamps, shuffle=False))
    # unshuffled: every frame once, episodes in the conversion's (seeded shuffle) order, frames in order
    assert sorted(int(s["index"]) for s in ours) == list(range(sum(LENGTHS))) == list(range(len(theirs)))
    for sample in ours:
        i = int(sample["index"])
        _assert_same(sample, theirs[i], f"{window} index {i}")


def test_return_uint8_equals_lerobot(converted: tuple[Path, Path]) -> None:
    src, dest = converted
    theirs = LeRobotDataset("local/reader_conformance", root=src, return_uint8=True)
    ours = LeRobotWdsDataset(str(dest), shuffle=False, return_uint8=True)
    for sample in ours:
        i = int(sample["index"])
        if i % 7 == 0:
            _assert_same(sample, theirs[i], f"uint8 index {i}")


@pytest.mark.parametrize("window", sorted(_windows()))
def test_shuffled_samples_equal_lerobot_at_their_index(converted: tuple[Path, Path], window: str) -> None:
    """The default path: shuffled, decode units chosen by the cost model (GOP / residue classes / sequential)."""
    src, dest = converted
    delta_timestamps = _windows()[window]
    theirs = LeRobotDataset("local/reader_conformance", root=src, delta_timestamps=delta_timestamps)
    ours = list(LeRobotWdsDataset(str(dest), delta_timestamps=delta_timestamps, shuffle=True, seed=3))
    order = [int(s["index"]) for s in ours]
    assert sorted(order) == list(range(sum(LENGTHS))) and order != sorted(order)
    for sample in ours:
        _assert_same(sample, theirs[int(sample["index"])], f"shuffled index {int(sample['index'])}")
