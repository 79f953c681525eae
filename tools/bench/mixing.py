"""Batch mixing metrics: how close a loader's batches come to i.i.d. sampling over episodes.

Computed from the ``episode_index`` of every delivered sample, batch by batch, for any loader (ours, the
baseline, peers): distinct episodes per batch, mean and minimum (i.i.d. sampling of 16 from 40 similar episodes
gives ~13.2 on average),
the rate of same-episode pairs inside a batch (i.i.d.: about 1 / episodes) and the lag-1 autocorrelation of
the episode index along the sample stream (0 when order carries no information; near 1 for sequential reads).

Diversity beyond the count, given the dataset's episode table (length and task of every episode): the share of
same-task pairs inside a batch (a batch of 11 distinct episodes can still be 11 recordings of one task) and the
spread of episode indices inside a batch (standard deviation; datasets are recorded task by task, session by
session, so neighbouring indices are similar recordings). :func:`iid_reference` gives every metric's value
under i.i.d. sampling of frames on the same episode table (seeded simulation), so a loader is reported against
what random sampling gives on the same data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

IID_BATCHES = 4000  # simulated i.i.d. batches: the reference's standard error is well under 1% of its value


def distinct_per_batch(batches: Sequence[Sequence[int]]) -> float:
    """Mean number of distinct episodes in a batch."""
    return sum(len(set(b)) for b in batches) / len(batches) if batches else 0.0


def same_pair_rate(batches: Sequence[Sequence[object]]) -> float:
    """Fraction of the sample pairs inside a batch whose labels (episode, task, ...) are equal."""
    same = pairs = 0
    for b in batches:
        n = len(b)
        pairs += n * (n - 1) // 2
        same += sum(c * (c - 1) // 2 for c in Counter(b).values())
    return same / pairs if pairs else 0.0


def same_episode_pair_rate(batches: Sequence[Sequence[int]]) -> float:
    """Fraction of the sample pairs inside a batch that come from the same episode."""
    return same_pair_rate(batches)


def episode_spread(batches: Sequence[Sequence[int]]) -> float:
    """Mean over batches of the (population) standard deviation of the episode indices in a batch."""
    return float(np.mean([np.std(np.asarray(b, dtype=np.float64)) for b in batches])) if batches else 0.0


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


def mixing(batches: Sequence[Sequence[int]], tasks: Mapping[int, str] | None = None) -> dict[str, float]:
    """All batch mixing metrics of a run, as recorded by the benchmark.

    The fewest distinct episodes is taken over full batches (a worker's short last batch of an epoch holds
    fewer samples, not less mixing).

    Args:
        batches: the episode index of every sample, batch by batch.
        tasks: episode index -> task; with it, the same-task pair share is included (an episode missing from
            it raises KeyError naming the episode: the table and the loader disagree about the dataset).
    """
    stream = [float(e) for b in batches for e in b]
    full = max((len(b) for b in batches), default=0)  # a worker's last batch of an epoch may be short
    out = {
        "distinct_episodes_per_batch": round(distinct_per_batch(batches), 3),
        "min_distinct_episodes_per_batch": min((len(set(b)) for b in batches if len(b) == full), default=0),
        "same_episode_pair_rate": round(same_episode_pair_rate(batches), 4),
        "lag1_episode_autocorr": round(lag1_autocorr(stream), 4),
        "episode_index_std": round(episode_spread(batches), 3),
    }
    if tasks is not None:
        out["same_task_pair_rate"] = round(same_pair_rate([[tasks[e] for e in b] for b in batches]), 4)
    return out


def iid_reference(
    lengths: Mapping[int, int], tasks: Mapping[int, str], batch_size: int, *, seed: int = 0
) -> dict[str, float]:
    """The mixing metrics of i.i.d. sampling: batches of frames drawn uniformly from every frame of the dataset.

    A frame's episode is drawn with probability ``length / total frames`` (what a shuffling sampler over a
    map-style dataset does, with replacement inside a batch being negligible for these statistics). Seeded,
    so the same table gives the same reference.

    Args:
        lengths: episode index -> frames.
        tasks: episode index -> task (same keys as ``lengths``).
        batch_size: samples per batch.
        seed: simulation seed.
    """
    if not lengths or batch_size < 1:
        raise ValueError(f"need episodes and batch_size >= 1, got {len(lengths)} episodes, batch {batch_size}")
    episodes = np.asarray(sorted(lengths), dtype=np.int64)
    weights = np.asarray([lengths[int(e)] for e in episodes], dtype=np.float64)
    draws = np.random.default_rng(seed).choice(episodes, size=(IID_BATCHES, batch_size), p=weights / weights.sum())
    batches = draws.tolist()
    out = mixing(batches, tasks)
    out.pop("lag1_episode_autocorr")  # 0 by construction
    out.pop("min_distinct_episodes_per_batch")  # the tail of 4000 random batches, not a property of i.i.d.
    share = weights / weights.sum()
    # exact expectation of the distinct count, next to the simulated value as a check of the simulation
    out["distinct_episodes_per_batch_exact"] = round(float(np.sum(1 - (1 - share) ** batch_size)), 3)
    return out


def relative_to_iid(measured: Mapping[str, float], iid: Mapping[str, float]) -> dict[str, float]:
    """``measured / iid`` for the metrics both have (1.0 = as random sampling; NaN when iid is 0)."""
    out = {}
    for key in (
        "distinct_episodes_per_batch",
        "same_episode_pair_rate",
        "same_task_pair_rate",
        "episode_index_std",
    ):
        if key in measured and key in iid:
            out[key] = round(measured[key] / iid[key], 3) if iid[key] else math.nan
    return out
