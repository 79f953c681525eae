"""Pure read planning: a reader's segments -> the GETs it issues, and the slices of each episode in their bytes.

A run of consecutive segments from one shard becomes one read: the whole shard when the reader uses all of
its episodes (one GET per shard), else the byte range from the run's first episode to its last (one ranged
GET per run; the manifest gives every episode's offset, length and sha256). Reads are cut at episode
boundaries to at most ``max_bytes`` (bounded memory whatever the shard size). With ``split_first`` the first
reads of a pass grow geometrically (1, 2, 4, ... episodes) so decoding starts as soon as the first episode
arrived and the pool fills while larger reads follow (first-batch latency over a bucket).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lerobot_wds.core.format import EpisodeExtent, ShardInfo
from lerobot_wds.core.urls import join_url
from lerobot_wds.reader.planning.splitting import Segment

RAMP_READS = 4  # with split_first, reads 0..3 of a pass hold at most 1, 2, 4, 8 episodes


@dataclass(frozen=True)
class Read:
    """One GET: a shard's URL, the byte range (None = whole shard) and the episodes used from it."""

    url: str
    shard: ShardInfo
    start: int | None
    end: int | None
    episodes: tuple[int, ...]  # the reader's episodes in these bytes, in shard order
    extents: tuple[EpisodeExtent, ...]  # their extents

    @property
    def nbytes(self) -> int:
        return self.shard.bytes if self.start is None or self.end is None else self.end - self.start

    @property
    def offset(self) -> int:
        """The shard offset of the first byte read."""
        return self.start or 0


def _runs(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Groups segments into runs of consecutive episodes of one shard."""
    runs: list[list[Segment]] = []
    for seg in segments:
        prev = runs[-1][-1] if runs else None
        if prev is not None and prev.ref == seg.ref:
            continue  # two visits of one episode (an elastic resume's pieces): its bytes are read once
        if prev is not None and prev.ref.shard == seg.ref.shard and seg.ref.position == prev.ref.position + 1:
            runs[-1].append(seg)
        else:
            runs.append([seg])
    return runs


def plan_reads(
    segments: Sequence[Segment], shards: Mapping[str, ShardInfo], root: str, *, max_bytes: int, split_first: bool
) -> list[Read]:
    """Turns a reader's segments (in reading order) into its reads (see the module docstring)."""
    reads: list[Read] = []
    for run in _runs(segments):
        info = shards[run[0].ref.shard]
        url = join_url(root, info.path)
        eps = [s.ref.episode for s in run]
        ext = [info.extents[s.ref.position] for s in run]
        ramping = split_first and len(reads) < RAMP_READS
        if len(ext) == len(info.extents) and info.bytes <= max_bytes and not ramping:
            reads.append(Read(url, info, None, None, tuple(eps), tuple(ext)))
            continue
        group: list[EpisodeExtent] = []
        for e in ext:
            ramp_cut = split_first and len(reads) < RAMP_READS and len(group) >= 2 ** len(reads)
            if group and (ramp_cut or e.offset + e.length - group[0].offset > max_bytes):
                reads.append(_range(url, info, group))
                group = []
            group.append(e)
        reads.append(_range(url, info, group))
    return reads


def _range(url: str, info: ShardInfo, group: Sequence[EpisodeExtent]) -> Read:
    start, end = group[0].offset, group[-1].offset + group[-1].length
    return Read(url, info, start, end, tuple(e.episode for e in group), tuple(group))


def episode_slices(read: Read, data: bytes) -> dict[int, memoryview]:
    """The bytes of each episode of a read (its members: headers, data, padding), as views (no copies)."""
    view = memoryview(data)
    return {e.episode: view[e.offset - read.offset : e.offset - read.offset + e.length] for e in read.extents}
