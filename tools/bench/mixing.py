"""Batch mixing metrics: how close a loader's batches come to i.i.d. sampling over episodes.

Computed from the ``episode_index`` of every delivered sample, batch by batch, for any loader (ours, the
baseline, peers): distinct episodes per batch (i.i.d. sampling of 16 from 40 similar episodes gives ~13.2),
the rate of same-episode pairs inside a batch (i.i.d.: about 1 / episodes) and the lag-1 autocorrelation of
the episode index along the sample stream (0 when order carries no information; near 1 for sequential reads).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def distinct_per_batch(batches: Sequence[Sequence[int]]) -> float:
    """Mean number of distinct episodes in a batch."""
    return sum(len(set(b)) for b in batches) / len(batches) if batches else 0.0


def same_episode_pair_rate(batches: Sequence[Sequence[int]]) -> float:
    """Fraction of the sample pairs inside a batch that come from the same episode."""
    same = pairs = 0
    for b in batches:
        n = len(b)
        pairs += n * (n - 1) // 2
        same += sum(c * (c - 1) // 2 for c in Counter(b).values())
    return same / pairs if pairs else 0.0


def same_episode_rate(episodes: Sequence[int]) -> float:
    """Fraction of consecutive samples of the stream from the same episode."""
    pairs = len(episodes) - 1
    return sum(a == b for a, b in zip(episodes, episodes[1:], strict=False)) / pairs if pairs > 0 else 0.0


def lag1_autocorr(values: Sequence[float]) -> float:
    """Lag-1 autocorrelation; 0.0 for a constant sequence."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values)
    if var == 0:
        return 0.0
    return sum((values[i] - mean) * (values[i + 1] - mean) for i in range(n - 1)) / var


def mixing(batches: Sequence[Sequence[int]]) -> dict[str, float]:
    """All batch mixing metrics of a run, as recorded by the benchmark."""
    stream = [float(e) for b in batches for e in b]
    return {
        "distinct_episodes_per_batch": round(distinct_per_batch(batches), 3),
        "same_episode_pair_rate": round(same_episode_pair_rate(batches), 4),
        "lag1_episode_autocorr": round(lag1_autocorr(stream), 4),
    }
