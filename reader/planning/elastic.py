"""Elastic resume: the anchors an epoch has not delivered yet, re-planned over any number of readers (pure).

An epoch's work is the visits of its plan (:func:`splitting.plan_epoch`). A visit serves its anchors in an order
that is a function of the visit alone (:mod:`pool`), and a reader serves each piece of a visit it was given in
that order, so what a reader delivered of a piece is a prefix of it: one count per piece says exactly which
anchors were delivered. :func:`remainder` turns the plan of every reader of a topology and their counts into
the *remainder*: per piece, the positions after its delivered prefix, in the plan's order (which is the epoch's
shuffled order). :func:`plan_remainder` cuts a remainder over another topology like a fresh epoch: contiguous
pieces of equal anchor counts (a cut may fall inside a piece: two readers then serve its two halves), quotas
by the same ``uneven`` rule. Every anchor of the remainder is planned exactly once; ``"pad"`` repeats a
reader's first anchors to the quota, ``"trim"`` drops the few anchors past it, as in any epoch.

A remainder travels in resume states as :func:`encode_pieces`' bytes: five int32 per piece, compressed.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from lerobot_wds.reader.errors import ResumeError
from lerobot_wds.reader.planning.splitting import EpisodeRef, Segment, SlotPlan, Uneven


def piece(ref: EpisodeRef, lo: int, hi: int, first: int, last: int) -> Segment:
    """The visit ``(ref, lo, hi)`` restricted to serving positions ``[first, last)`` (None when all of them)."""
    return Segment(ref, lo, hi, None if (first, last) == (0, hi - lo) else (first, last))


def span(seg: Segment) -> tuple[int, int]:
    """The serving positions ``[first, last)`` of the visit a segment holds."""
    return seg.order if seg.order is not None else (0, seg.hi - seg.lo)


def remainder(slots: Sequence[Sequence[Segment]], delivered: Sequence[Sequence[int]]) -> list[Segment]:
    """What is left of the epoch after reader ``s`` delivered ``delivered[s][i]`` anchors of its segment ``i``.

    ``slots`` are every reader's segments, slot-major (rank, then worker); counts beyond a piece's size are
    repeats of the ``"pad"`` rule and leave nothing of it.
    """
    left: list[Segment] = []
    for segments, counts in zip(slots, delivered, strict=True):
        if len(counts) != len(segments):
            raise ResumeError(
                f"resume state holds {len(counts)} delivery counts for a plan of {len(segments)} visits"
            )
        for seg, n in zip(segments, counts, strict=True):
            first, last = span(seg)
            if first + n < last:
                left.append(piece(seg.ref, seg.lo, seg.hi, first + int(n), last))
    return left


def plan_remainder(
    pieces: Sequence[Segment], world_size: int, num_workers: int, uneven: Uneven
) -> list[list[SlotPlan]]:
    """Cuts ``pieces`` (in order) into ``world_size x num_workers`` readers; returns ``plan[rank][worker]``.

    Raises:
        ResumeError: fewer anchors left than readers (but some): resume with fewer readers, or at the next epoch.
    """
    slots = world_size * num_workers
    total = sum(p.frames for p in pieces)
    if 0 < total < slots:
        raise ResumeError(
            f"the epoch has {total} anchors left, fewer than {world_size} ranks x {num_workers} workers = {slots} "
            "readers; resume it with fewer readers, or start the next epoch"
        )
    bounds = [k * total // slots for k in range(slots + 1)]
    out: list[list[Segment]] = [[] for _ in range(slots)]
    start = 0
    for p in pieces:
        first, _ = span(p)
        end = start + p.frames
        for k in range(slots):
            lo, hi = max(start, bounds[k]), min(end, bounds[k + 1])
            if lo < hi:
                out[k].append(piece(p.ref, p.lo, p.hi, first + lo - start, first + hi - start))
        start = end
    frames = [sum(s.frames for s in segs) for segs in out]
    quota = (max(frames) if uneven == "pad" else min(frames)) if slots else 0
    flat = [SlotPlan(tuple(segs), f, quota) for segs, f in zip(out, frames, strict=True)]
    return [flat[r * num_workers : (r + 1) * num_workers] for r in range(world_size)]


def encode_pieces(pieces: Sequence[Segment]) -> bytes:
    """A remainder as bytes: ``(episode, lo, hi, first, last)`` int32 rows, zlib-compressed."""
    rows = np.array([(p.ref.episode, p.lo, p.hi, *span(p)) for p in pieces], dtype=np.int32).reshape(-1, 5)
    return zlib.compress(rows.tobytes(), 6)


def decode_pieces(blob: bytes, refs: Mapping[int, EpisodeRef]) -> list[Segment]:
    """The remainder :func:`encode_pieces` wrote, its episodes looked up in ``refs`` (the manifest's).

    Raises:
        ResumeError: bytes that do not decode, or an episode this root does not hold.
    """
    try:
        rows = np.frombuffer(zlib.decompress(blob), dtype=np.int32).reshape(-1, 5)
    except (zlib.error, ValueError) as e:
        raise ResumeError(f"resume state: its remaining-work record is corrupt ({e})") from e
    missing = sorted({int(r[0]) for r in rows} - set(refs))
    if missing:
        raise ResumeError(f"resume state names episodes {missing[:10]} that this root does not hold")
    return [piece(refs[int(e)], int(lo), int(hi), int(f), int(la)) for e, lo, hi, f, la in rows]


def encode_counts(counts: Sequence[int]) -> bytes:
    """A reader's delivered count per segment as bytes (int32, zlib-compressed)."""
    return zlib.compress(np.asarray(counts, dtype=np.int32).tobytes(), 6)


def decode_counts(blob: bytes) -> list[int]:
    try:
        return np.frombuffer(zlib.decompress(blob), dtype=np.int32).tolist()
    except (zlib.error, ValueError) as e:
        raise ResumeError(f"resume state: a reader's delivery record is corrupt ({e})") from e
