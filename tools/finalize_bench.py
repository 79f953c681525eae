"""Times ``finalize`` on the bookkeeping of a large array job: ``python -m lerobot_wds.tools.finalize_bench DIR``.

Writes, under ``DIR``, what ``--part i/N`` runs of an ``--episodes``-episode conversion leave behind (``meta/``,
every part manifest, and each shard as a sparse file of its recorded size: finalize checks sizes, never
contents), then runs ``finalize`` in this process and prints one JSON record: seconds, peak RSS from the
start of ``finalize`` (and before it), and the manifest's size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from lerobot_wds.convert.manifest_io import PartManifest, finalize, part_path
from lerobot_wds.convert.sink import open_sink
from lerobot_wds.core.format import META_DIR, EpisodeExtent, ShardInfo, shard_path
from lerobot_wds.core.peak_rss import PeakRss

# One camera of 10 frames per episode, the 10^5-episode shape.
FEATURES = {"observation.images.front": {"dtype": "video", "shape": [96, 128, 3]}}
EPISODE_BYTES = 9_728
FRAMES = 10


def _shard(index: int, episodes: range) -> ShardInfo:
    extents = [
        EpisodeExtent(e, FRAMES, k * EPISODE_BYTES, EPISODE_BYTES, hashlib.sha256(str(e).encode()).hexdigest())
        for k, e in enumerate(episodes)
    ]
    size = len(episodes) * EPISODE_BYTES + 1024
    digest = hashlib.sha256(f"shard{index}".encode()).hexdigest()
    return ShardInfo(shard_path(index), size, digest, list(episodes), FRAMES * len(episodes), extents)


def write_split(root: Path, episodes: int, shards: int, parts: int) -> None:
    """Writes the part manifests and sparse shards of a finished ``parts``-way conversion under ``root``."""
    per = -(-episodes // shards)
    plan = [range(i * per, min(episodes, (i + 1) * per)) for i in range(shards)]
    (root / META_DIR).mkdir(parents=True, exist_ok=True)
    (root / META_DIR / "info.json").write_text("{}")
    (root / "shards").mkdir(exist_ok=True)
    sink = open_sink(str(root))
    source = {"url": "/synthetic", "episodes_sha256": "0" * 64, "total_episodes": episodes}
    for p in range(parts):
        mine = [_shard(i, eps) for i, eps in enumerate(plan) if i % parts == p]
        for s in mine:
            with open(root / s.path, "wb") as f:
                f.truncate(s.bytes)
        part = PartManifest(
            part_index=p,
            part_count=parts,
            planned_shards=shards,
            plan_key="0" * 64,
            fps=10.0,
            features=FEATURES,
            camera_keys=list(FEATURES),
            source=source,
            options={"order": "shuffle", "seed": 0},
            shards=mine,
            skipped=[],
        )
        sink.put_bytes(part.to_json_bytes(), part_path(p, parts))


def main(argv: list[str] | None = None) -> None:
    """Command line: ``DIR [--episodes N] [--shards S] [--parts P]``; DIR must not exist."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("root", type=Path)
    p.add_argument("--episodes", type=int, default=100_000)
    p.add_argument("--shards", type=int, default=200)
    p.add_argument("--parts", type=int, default=100)
    a = p.parse_args(argv)
    if a.root.exists():
        p.error(f"{a.root} exists; give a new folder")
    write_split(a.root, a.episodes, a.shards, a.parts)
    rss = PeakRss(reset=True)
    t0 = time.perf_counter()
    finalize(open_sink(str(a.root)), part_count=a.parts)
    seconds = time.perf_counter() - t0
    record = {
        "episodes": a.episodes,
        "shards": a.shards,
        "parts": a.parts,
        "finalize_seconds": round(seconds, 2),
        "peak_rss_mb": round(rss.peak_bytes() / 1e6),
        "start_rss_mb": round(rss.start_bytes / 1e6),
        "manifest_mb": round(os.path.getsize(a.root / "manifest.json") / 1e6, 1),
        "load": os.getloadavg()[0],
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
