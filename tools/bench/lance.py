"""The peer loader: lerobot-lancedb's ``LanceDBDataset`` on a Lance conversion of the same dataset.

Set up as its documentation says and like the other loaders here: same batch size, workers, windows
(identical ``delta_timestamps``), dtype and a seeded shuffling sampler; its batched ``__getitems__`` serves
each batch in one deduplicated read. Workers start with ``lance_mp_context()`` (forkserver or spawn, Lance
is not fork-safe). lerobot-lancedb is imported lazily (``pip install lerobot-lancedb==0.3.1`` next to
lerobot 0.6.1); convert with ``lerobot-lance-convert --root SRC --out DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lerobot_wds.tools.bench.loaders import LoaderBundle, shuffled_loader
from lerobot_wds.tools.bench.scenarios import BenchConfig
from lerobot_wds.tools.errors import BenchError


def import_lance() -> tuple[Any, Any]:
    """Returns ``(LanceDBDataset, lance_mp_context)``; raises BenchError saying how to install it."""
    try:
        from lerobot_lancedb.reader import LanceDBDataset, lance_mp_context
    except ImportError as e:
        raise BenchError(
            f"--baseline lancedb needs lerobot-lancedb==0.3.1 (next to lerobot 0.6.1, Python >= 3.12): {e}"
        ) from e
    return LanceDBDataset, lance_mp_context


def lance_probe(_dataset: Any) -> dict[str, Any]:
    """lerobot-lancedb exposes no decoder counters."""
    return {}


def build_lance(config: BenchConfig) -> LoaderBundle:
    """Builds ``LanceDBDataset`` on the local Lance root ``config.source`` and a shuffling DataLoader."""
    LanceDBDataset, lance_mp_context = import_lance()  # noqa: N806 - a class
    root = Path(config.source)
    if not (root / "meta" / "info.json").is_file():
        raise BenchError(f"--lance-root {root}: no meta/info.json; expected a lerobot-lance-convert output")
    probe = LanceDBDataset(root=root)
    cams = tuple(probe.meta.video_keys)
    deltas = config.window.delta_timestamps(cams, probe.meta.fps)
    dataset = LanceDBDataset(root=root, delta_timestamps=deltas, return_uint8=config.return_uint8)
    context = lance_mp_context() if config.num_workers > 0 else None
    loader = shuffled_loader(dataset, config, lance_probe, multiprocessing_context=context)
    return LoaderBundle(loader, cams, float(probe.meta.fps), len(dataset), {"samples_per_epoch": len(dataset)})
