"""Estimating each episode's output bytes before converting, so shards can be planned to a target size.

An episode's estimate is its share of its data file and of each camera's video file (shares are taken over
every episode of the source, so they do not depend on the selection) plus the output format's fixed costs.
"""

from __future__ import annotations

import numpy as np

from lerobot_wds.convert.plan import EpisodeEstimate
from lerobot_wds.convert.source import LeRobotSource

# Fixed output bytes of a sample beyond its share of the source (measured on small fixtures): each tar member
# costs a 512-byte header plus ~256 bytes of padding on average, the JSON ~1 KB, a one-episode parquet ~3 KB of
# schema/footer, and each mini-MP4 ~0.8 KB of boxes plus ~16 bytes of sample tables per frame.
MEMBER_OVERHEAD = 768
FIXED_OVERHEAD = 1024 + 3072
MP4_OVERHEAD = 768
MP4_PER_FRAME = 16
_CHUNK = 4096


def estimate_episodes(source: LeRobotSource, episodes: list[int], workers: int) -> list[EpisodeEstimate]:
    """Estimates each episode's output bytes as its share of its data file and of each camera's file.

    Works on the episode table's columns (:class:`~lerobot_wds.convert.source.EpisodeTable`), so no record
    is built; the arithmetic is Python's on each episode's values, in the same order for every part.
    """
    table = source.episodes
    pos = np.searchsorted(table.index, np.asarray(episodes, dtype=np.int64))
    codes = np.unique(np.concatenate([table.data_path[pos], table.video_path[pos].ravel()]))
    by_path = source.file_sizes([table.paths[c] for c in codes.tolist()], workers)
    sizes = [by_path.get(p, 0) for p in table.paths]
    # shares are taken over every episode of the source, so they don't depend on the selection
    rows_in = np.zeros(len(table.paths), dtype=np.int64)
    np.add.at(rows_in, table.data_path, table.length)
    span_of = np.zeros(len(table.paths), dtype=np.float64)
    np.maximum.at(span_of, table.video_path.ravel(), table.video_to.ravel())
    rows_of, spans = rows_in.tolist(), span_of.tolist()
    cams = len(table.cameras)
    out = []
    for start in range(0, len(pos), _CHUNK):  # Python values a chunk at a time: the columns stay compact
        at = pos[start : start + _CHUNK]
        for ep, n, d, vp, vf, vt in zip(
            table.index[at].tolist(),
            table.length[at].tolist(),
            table.data_path[at].tolist(),
            table.video_path[at].tolist(),
            table.video_from[at].tolist(),
            table.video_to[at].tolist(),
            strict=True,
        ):
            est = sizes[d] * n / max(1, rows_of[d]) + FIXED_OVERHEAD
            est += (2 + cams) * MEMBER_OVERHEAD + cams * (MP4_OVERHEAD + MP4_PER_FRAME * n)
            for c in range(cams):
                est += sizes[vp[c]] * (vt[c] - vf[c]) / max(spans[vp[c]], 1e-9)
            out.append(EpisodeEstimate(ep, n, int(round(est))))
    return out
