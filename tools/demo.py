"""``lerobot-wds demo``: the whole job end to end on a small generated LeRobot v3 dataset.

Writes a LeRobot v3 dataset with ffmpeg (3 cameras of different sizes, AV1 GOP 2 like lerobot's
default, episodes of different lengths), converts it, verifies the shards bit for bit against the
source, then streams it with ``LeRobotWdsDataset`` through a DataLoader and checks that every frame
arrived exactly once and that the decoded pixels are the frames the dataset says they are.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoConfig:
    """Where the demo writes and how big its dataset is."""

    workdir: Path
    episode_lengths: tuple[int, ...] = (45, 90, 30, 120, 60, 75)
    fps: int = 30
    shard_bytes: int = 60_000
    num_workers: int = 2
    batch_size: int = 8

    def __post_init__(self) -> None:
        if not self.episode_lengths or min(self.episode_lengths) < 1:
            raise ValueError(f"episode_lengths must be non-empty and >= 1, got {self.episode_lengths}")
        if self.num_workers < 0 or self.batch_size < 1:
            raise ValueError(
                f"num_workers must be >= 0 and batch_size >= 1, got {self.num_workers}, {self.batch_size}"
            )


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run_demo(cfg: DemoConfig) -> int:
    """Runs the demo; returns 0 when every check held, 2 when the ``testing`` extra is missing."""
    import importlib.util

    if importlib.util.find_spec("av") is None:  # the synthetic dataset is written with PyAV
        print(
            "lerobot-wds demo: needs the testing extra (PyAV): pip install 'lerobot-wds[testing]'", file=sys.stderr
        )
        return 2
    import torch
    from torch.utils.data import DataLoader

    from lerobot_wds import LeRobotWdsDataset
    from lerobot_wds.convert.config import ConvertConfig
    from lerobot_wds.convert.pipeline import convert
    from lerobot_wds.core.peak_rss import PeakRss
    from lerobot_wds.testing.synth import CAMS_3, LeRobotSpec, make_dataset, read_identity
    from lerobot_wds.tools.errors import DemoError
    from lerobot_wds.tools.verify.run import VerifyConfig, verify

    if cfg.workdir.exists():
        shutil.rmtree(cfg.workdir)
    src, dest = cfg.workdir / "lerobot_v3", cfg.workdir / "converted"

    t = _step(f"1/4 write a LeRobot v3 dataset with ffmpeg -> {src}")
    spec = LeRobotSpec(codec="av1", cameras=CAMS_3, episode_lengths=cfg.episode_lengths, fps=cfg.fps)
    fx = make_dataset(spec, src, name="demo")
    sizes = ", ".join(f"{k} {h}x{w}" for k, (w, h) in fx.camera_sizes.items())  # HxW, as inspect prints
    print(f"{len(fx.episodes)} episodes, {fx.total_frames} frames, {cfg.fps} fps, AV1; cameras (HxW): {sizes}")
    print(f"took {time.perf_counter() - t:.1f} s")

    _step(f"2/4 convert -> {dest}")
    summary = convert(
        ConvertConfig(source=str(src), dest=str(dest), target_shard_bytes=cfg.shard_bytes, progress=False),
        rss=PeakRss(reset=True),  # the demo owns its process: the conversion's own peak, not the dataset writer's
    )
    print(summary.line())
    for p in sorted((dest / "shards").iterdir()):
        print(f"  {p.relative_to(dest)}  {p.stat().st_size:>9,} bytes")

    _step("3/4 verify: sha256, tar structure, rows vs source, 4 frames/episode/camera decoded vs source")
    report = verify(VerifyConfig(dest=str(dest), source=str(src), decode_frames=4, progress=False))
    print(report.summary())
    if not report.ok:
        return 1

    t = _step(f"4/4 stream with LeRobotWdsDataset: shuffle, sarm windows, {cfg.num_workers} DataLoader workers")
    ds = LeRobotWdsDataset(
        str(dest), preset="sarm", shuffle=True, seed=0, return_uint8=True, mix_batch=cfg.batch_size
    )
    loader = DataLoader(ds, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    seen: Counter[tuple[int, int]] = Counter()
    first: dict[str, Any] | None = None
    for batch in loader:
        first = first or batch
        seen.update(zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True))
    elapsed = time.perf_counter() - t
    if first is None:
        raise DemoError(f"{dest}: the loader yielded no batch")
    cam = fx.camera_keys[0]
    print("one batch:")
    for key, value in first.items():
        desc = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, torch.Tensor) else f"{len(value)} x str"
        print(f"  {key:<40} {desc}")
    expected = {(e.index, k) for e in fx.episodes for k in range(e.length)}
    repeats = sum(n - 1 for n in seen.values())
    print(
        f"{sum(seen.values())} samples in {elapsed:.1f} s; distinct anchors {len(seen)} of {len(expected)}, "
        f"{repeats} repeats used to equalise workers"
    )
    # the anchor frame of the sarm window is the "now" entry; its pixels must carry its own identity
    now = ds.sample_spec.deltas[cam].index(0)
    ids = [read_identity(img[now]) for img in first[cam]]
    want = list(zip(first["episode_index"].tolist(), first["frame_index"].tolist(), strict=True))
    print(f"decoded identity of the first batch's '{cam}' frames equals their (episode, frame): {ids == want}")
    ok = set(seen) == expected and ids == want
    print("\nDEMO OK" if ok else "\nDEMO FAILED: frames missing or wrong")
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``demo`` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="generate, convert, verify and stream a small example dataset",
        description="Generate a small synthetic LeRobot v3 dataset, convert it, verify the conversion and stream "
        "it with LeRobotWdsDataset; prints DEMO OK when every step held (exit 0).",
    )
    p.add_argument("--workdir", type=Path, default=Path("demo_out"), help="output directory (replaced)")
    p.set_defaults(func=lambda args: run_demo(DemoConfig(workdir=args.workdir)))
