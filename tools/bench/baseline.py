"""The baseline loader: lerobot's ``LeRobotDataset`` on the original LeRobot v3 root, set up like ours.

Same batch size, workers, windows (the identical ``delta_timestamps``), output dtype (lerobot 0.6.1 has
``return_uint8`` too) and shuffling (a seeded random sampler, as a training loop would use), decoding with
torchcodec. lerobot is imported lazily: it needs Python >= 3.12 (``lerobot[dataset]==0.6.1``), so this path
errors clearly when it is absent.

lerobot keeps one process-wide ``VideoDecoderCache`` of decoders by file path without counters; the probe
wraps its ``get_decoder`` in each worker to count hits (path already cached), misses and evictions (entries
that disappeared), so the report can compare decoder reuse too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lerobot_wds.tools.bench.loaders import LoaderBundle, shuffled_loader
from lerobot_wds.tools.bench.scenarios import BenchConfig
from lerobot_wds.tools.errors import BenchError

_COUNTS: dict[str, int] = {"hits": 0, "misses": 0, "evictions": 0}


def import_lerobot() -> Any:
    """Returns lerobot's ``LeRobotDataset`` class; raises BenchError saying how to get lerobot when absent."""
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as e:
        raise BenchError(
            f"--baseline lerobot needs lerobot[dataset]==0.6.1 (Python >= 3.12) in this interpreter: {e}. "
            "Run the bench with that environment's python (e.g. /tmp/venv312/bin/python -m lerobot_wds.tools.cli)"
        ) from e
    return LeRobotDataset


def install_decoder_counters(_worker_id: int | None = None) -> None:
    """Wraps lerobot's default decoder cache so this process counts hits, misses and evictions (idempotent)."""
    from lerobot.datasets import video_utils

    cache = video_utils._default_decoder_cache
    if getattr(cache, "_bench_counting", False):
        return
    inner = cache.get_decoder

    def counting_get_decoder(video_path: Any) -> Any:
        hit = video_path in cache
        before = cache.size()
        decoder = inner(video_path)
        _COUNTS["hits" if hit else "misses"] += 1
        _COUNTS["evictions"] += before + (0 if hit else 1) - cache.size()
        return decoder

    cache.get_decoder = counting_get_decoder
    cache._bench_counting = True


def lerobot_probe(_dataset: Any) -> dict[str, Any]:
    """Decoder cache counters of lerobot in the calling process."""
    from lerobot.datasets import video_utils

    return {"decoders": {**_COUNTS, "size": video_utils._default_decoder_cache.size()}}


def build_lerobot(config: BenchConfig) -> LoaderBundle:
    """Builds ``LeRobotDataset`` on the local root ``config.source`` and a shuffling DataLoader."""
    LeRobotDataset = import_lerobot()
    root = Path(config.source)
    if not (root / "meta" / "info.json").is_file():
        raise BenchError(f"--lerobot-root {root}: no meta/info.json; expected a local LeRobot v3 dataset root")
    meta_ds = LeRobotDataset(config.repo_id, root=root, video_backend="torchcodec")
    cams = tuple(meta_ds.meta.video_keys)
    deltas = config.window.delta_timestamps(cams, meta_ds.fps)
    dataset = LeRobotDataset(
        config.repo_id,
        root=root,
        delta_timestamps=deltas,
        return_uint8=config.return_uint8,
        video_backend="torchcodec",
    )
    install_decoder_counters()  # for num_workers == 0; forked or spawned workers install it themselves
    loader = shuffled_loader(dataset, config, lerobot_probe, worker_init_fn=install_decoder_counters)
    return LoaderBundle(
        loader,
        cams,
        float(meta_ds.fps),
        dataset.num_frames,
        {"samples_per_epoch": len(dataset), "episodes": dataset.num_episodes},
    )
