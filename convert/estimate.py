"""Estimating each episode's output bytes before converting, so shards can be planned to a target size.

An episode's estimate is its share of its data file and of each camera's video file (shares are taken over
every episode of the source, so they do not depend on the selection) plus the output format's fixed costs.
"""

from __future__ import annotations

from lerobot_wds.convert.plan import EpisodeEstimate
from lerobot_wds.convert.source import LeRobotSource

# Fixed output bytes of a sample beyond its share of the source (measured on small fixtures): each tar member
# costs a 512-byte header plus ~256 bytes of padding on average, the JSON ~1 KB, a one-episode parquet ~3 KB of
# schema/footer, and each mini-MP4 ~0.8 KB of boxes plus ~16 bytes of sample tables per frame.
MEMBER_OVERHEAD = 768
FIXED_OVERHEAD = 1024 + 3072
MP4_OVERHEAD = 768
MP4_PER_FRAME = 16


def estimate_episodes(source: LeRobotSource, episodes: list[int], workers: int) -> list[EpisodeEstimate]:
    """Estimates each episode's output bytes as its share of its data file and of each camera's file."""
    recs = [source.episodes[e] for e in episodes]
    paths = [r.data_path for r in recs] + [v.path for r in recs for v in r.videos.values()]
    sizes = source.file_sizes(paths, workers)
    # shares are taken over every episode of the source, so they don't depend on the selection
    rows_in: dict[str, int] = {}
    span_of: dict[str, float] = {}
    for r in source.episodes.values():
        rows_in[r.data_path] = rows_in.get(r.data_path, 0) + r.length
        for v in r.videos.values():
            span_of[v.path] = max(span_of.get(v.path, 0.0), v.to_timestamp)
    out = []
    for r in recs:
        est = sizes[r.data_path] * r.length / max(1, rows_in[r.data_path]) + FIXED_OVERHEAD
        est += (2 + len(r.videos)) * MEMBER_OVERHEAD + len(r.videos) * (MP4_OVERHEAD + MP4_PER_FRAME * r.length)
        for v in r.videos.values():
            est += sizes[v.path] * (v.to_timestamp - v.from_timestamp) / max(span_of[v.path], 1e-9)
        out.append(EpisodeEstimate(r.episode_index, r.length, int(round(est))))
    return out
