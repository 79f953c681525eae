"""Node-stable epoch planning (pure): every node reads the same episodes every epoch, reshuffled inside the node.

With a node-local cache (:mod:`~lerobot_wds.reader.fetching.cache`) a node's later epochs are local reads only
if the node reads the same episodes again. So the episode sequence of epoch 0 (:func:`epoch_sequence`: shards
shuffled by the seed, rotated) is cut once into ``nodes`` shares of equal frame counts (within one frame), the
same for every epoch. Every epoch, a node's share is regrouped by shard, the groups shuffled and rotated by
(seed, epoch, node), and cut into ``slots_per_node`` = local ranks x workers pieces: which rank and worker reads
which episodes, and in which order, changes every epoch as without nodes; the node's set does not. Ranks are
laid out as launchers number them: node ``n`` holds ranks ``n * ranks_per_node ... (n + 1) * ranks_per_node - 1``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from lerobot_wds.reader.errors import OptionError

if TYPE_CHECKING:
    from lerobot_wds.reader.planning.splitting import Segment

NODE_SALT = 5  # the random stream of a node's reshuffle (epoch_sequence uses 0 and 3, readers 1 and 2)
SHARE_EPOCH = 0  # the epoch whose sequence is cut into the node shares


def cut_segments(segments: Sequence[Segment], parts: int) -> list[list[Segment]]:
    """Cuts segments (laid end to end) into ``parts`` contiguous pieces of equal frame counts (within one)."""
    total = sum(s.frames for s in segments)
    bounds = [k * total // parts for k in range(parts + 1)]
    pieces: list[list[Segment]] = [[] for _ in range(parts)]
    start = 0
    for seg in segments:
        end = start + seg.frames
        for k in range(parts):
            lo, hi = max(start, bounds[k]), min(end, bounds[k + 1])
            if lo < hi:
                pieces[k].append(replace(seg, lo=seg.lo + lo - start, hi=seg.lo + hi - start))
        start = end
    return pieces


def reshuffled(share: Sequence[Segment], rng: random.Random) -> list[Segment]:
    """A node's share in an epoch's order: runs of one shard kept together, runs shuffled, then rotated."""
    groups: list[list[Segment]] = []
    for seg in share:
        if groups and groups[-1][-1].ref.shard == seg.ref.shard:
            groups[-1].append(seg)
        else:
            groups.append([seg])
    rng.shuffle(groups)
    flat = [s for g in groups for s in g]
    if flat:
        r = rng.randrange(len(flat))
        flat = flat[r:] + flat[:r]
    return flat


def node_pieces(
    shares: Sequence[Sequence[Segment]], rngs: Sequence[random.Random] | None, slots: int
) -> list[list[Segment]]:
    """Every reader's segments (rank-major slots, as :func:`~splitting.cut` returns them) from the node shares.

    ``shares``: each node's episodes (epoch 0's sequence cut into as many pieces as nodes); ``rngs``: each
    node's random stream of this epoch, (seed, epoch, ``NODE_SALT``, node); None keeps the share's order.

    Raises:
        OptionError: ``slots`` (ranks x workers) is not a multiple of the number of nodes.
    """
    nodes = len(shares)
    if nodes < 1 or slots % nodes:
        raise OptionError(
            f"{slots} readers (ranks x workers) do not split evenly into {nodes} nodes; every node needs the same "
            "number of ranks (ranks_per_node must divide the world size)"
        )
    pieces: list[list[Segment]] = []
    for node, share in enumerate(shares):
        order = reshuffled(share, rngs[node]) if rngs is not None else list(share)
        pieces.extend(cut_segments(order, slots // nodes))
    return pieces
