"""The peer loader: lerobot's ``StreamingLeRobotDataset`` on the original LeRobot v3 root, set up like the others.

Same batch size, workers, windows (identical ``delta_timestamps``), dtype (``return_uint8``) and seed; it is an
``IterableDataset`` that shuffles through its own frame buffer (``buffer_size`` 1000, lerobot's default), so the
DataLoader gets no sampler, as lerobot's training script builds it for streaming. It can be slow to start and
memory-hungry (its buffer holds decoded frames): the bench runs it in a child process under a time and memory
bound (:mod:`lerobot_wds.tools.bench.peers.guard`) and reports "timeout" / "memory" / "killed" as its result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from lerobot_wds.tools.bench.loaders import LoaderBundle, ProbeCollate
from lerobot_wds.tools.bench.scenarios import BenchConfig
from lerobot_wds.tools.errors import BenchError


def import_streaming() -> Any:
    """Returns lerobot's ``StreamingLeRobotDataset`` class; raises BenchError saying how to get lerobot."""
    try:
        from lerobot.datasets.streaming_dataset import StreamingLeRobotDataset
    except ImportError as e:
        raise BenchError(
            f"--baseline streaming needs lerobot[dataset]==0.6.1 (Python >= 3.12) in this interpreter: {e}"
        ) from e
    return StreamingLeRobotDataset


def streaming_probe(_dataset: Any) -> dict[str, Any]:
    """StreamingLeRobotDataset exposes no decoder counters."""
    return {}


def build_streaming(config: BenchConfig) -> LoaderBundle:
    """Builds ``StreamingLeRobotDataset`` on the local root ``config.source`` and its DataLoader."""
    StreamingLeRobotDataset = import_streaming()  # noqa: N806 - a class
    root = Path(config.source)
    if not (root / "meta" / "info.json").is_file():
        raise BenchError(f"--lerobot-root {root}: no meta/info.json; expected a local LeRobot v3 dataset root")
    probe = StreamingLeRobotDataset(config.repo_id, root=root)
    cams = tuple(probe.meta.video_keys)
    deltas = config.window.delta_timestamps(cams, probe.fps)
    dataset = StreamingLeRobotDataset(
        config.repo_id,
        root=root,
        delta_timestamps=deltas,
        return_uint8=config.return_uint8,
        seed=config.seed,
        shuffle=True,
    )
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=config.num_workers,
        collate_fn=ProbeCollate(streaming_probe, dataset),
        persistent_workers=False,
    )
    return LoaderBundle(loader, cams, float(probe.fps), dataset.num_frames, {"episodes": dataset.num_episodes})
