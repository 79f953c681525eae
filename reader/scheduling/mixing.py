"""The batch-mixing guarantee: the distinct episodes every batch holds, the pool that gives them, and saying
when something bounds them.

i.i.d. sampling of frames from a reader's episodes puts :func:`iid_distinct` distinct episodes in a batch of
``b``. The guarantee (:func:`mix_target`) is ``IID_SHARE`` of that in every batch, the first of a pass
included, at any batch size. The scheduler (:mod:`pool`) draws each anchor of a batch from an open visit that
has not served that batch yet, so a batch holds ``min(b, open visits)`` distinct episodes: the pool is kept at
:func:`open_target` visits (``OPEN_PER_SAMPLE`` per batch sample, for headroom and for mixing across batches)
and never below the target while the memory ceiling allows (over long GOPs, windowed units may spend the
headroom above the batch size on fewer decode passes, see :mod:`pool`).

What bounds the pool below the batch size (the worker's memory ceiling, a frame budget or ``open_episode_bytes``
the user set, ``active_episodes``), or a reader's share of the episodes below the target, is said once per
process with its numbers (:func:`warn_once`).
What a reader delivered is counted by :class:`~lerobot_wds.reader.assembling.mixing_tally.MixingTally`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lerobot_wds.reader.scheduling.admission import Admission, Bound, Cost

log = logging.getLogger(__name__)

DEFAULT_BATCH = 16  # the batch a per-sample reader is measured against (DataLoader(ds, batch_size=16))
TARGET_SHARE = 10 / 16  # what a reader's share must give i.i.d. before it is said to bound the mix
IID_SHARE = 0.8  # the guarantee: every batch holds at least this share of what i.i.d. sampling gives
OPEN_PER_SAMPLE = 1.5  # open visits per batch sample: headroom for the pool's churn and mixing across batches
_WARNED: set[str] = set()


def expected_distinct(open_visits: int, batch: int) -> float:
    """Mean distinct episodes in ``batch`` uniform draws (with replacement) from ``open_visits`` visits."""
    if open_visits < 1 or batch < 1:
        return 0.0
    return open_visits * (1.0 - (1.0 - 1.0 / open_visits) ** batch)


def target_distinct(batch: int) -> float:
    """What a reader's share must let i.i.d. sampling give before it is said to bound the mix (10 of 16)."""
    return TARGET_SHARE * batch


def iid_distinct(lengths: Sequence[int], batch: int) -> float:
    """Mean distinct episodes in ``batch`` frames drawn i.i.d. (with replacement) from episodes of ``lengths``."""
    total = sum(lengths)
    if total <= 0 or batch < 1:
        return 0.0
    return sum(1.0 - (1.0 - n / total) ** batch for n in lengths if n > 0)


def mix_target(lengths: Sequence[int], batch: int) -> int:
    """Distinct episodes every batch of ``batch`` holds: ``IID_SHARE`` of i.i.d. over these episodes."""
    return max(1, min(batch, math.ceil(IID_SHARE * iid_distinct(lengths, batch) - 1e-9)))


def open_target(batch: int) -> int:
    """Open visits the scheduler keeps (when the reader has that many episodes) for a batch of ``batch``."""
    return max(1, math.ceil(OPEN_PER_SAMPLE * batch))


def warn_once(kind: str, message: str, *args: object) -> None:
    """Logs a warning the first time ``kind`` is seen in this process."""
    if kind not in _WARNED:
        _WARNED.add(kind)
        log.warning(message, *args)


_BOUND_HINT = {
    "memory": "raise DecodeConfig.memory_limit_bytes, or lower the batch size or the resolution",
    "frames": "leave DecodeConfig.frame_cache_bytes at its default None to size it automatically",
    "open_bytes": "leave DecodeConfig.open_episode_bytes at its default None to size it automatically",
    "active": "raise active_episodes or leave it at its default None",
}
_BOUND_NAME = {
    "memory": "DecodeConfig.memory_limit_bytes",
    "frames": "DecodeConfig.frame_cache_bytes",
    "open_bytes": "DecodeConfig.open_episode_bytes",
    "active": "active_episodes",
}


def warn_pool_bound(bound: Bound, memory: Admission, fit: int, cost: Cost, batch: int) -> None:
    """Says once that ``bound`` holds the pool at ``fit`` open episodes, below the batch, with the numbers."""
    b = batch
    bounds = memory.bounds
    limit = {
        "memory": bounds.memory,
        "frames": memory.budget.fixed or 0,
        "open_bytes": bounds.open_bytes or 0,
        "active": bounds.active,
    }[bound]
    shown = f"{limit >> 20} MiB" if bound != "active" else str(limit)
    warn_once(
        f"pool:{bound}",
        "%s=%s holds %d open episodes at this frame size, GOP and window (%.1f MiB each: %.1f decoded frames, "
        "%.1f video, %.1f decoders): batches of %d hold at most %d distinct episodes; the target of %d open needs "
        "about %d MiB (%s)",
        _BOUND_NAME[bound],
        shown,
        fit,
        cost.total / 2**20,
        cost.frames / 2**20,
        cost.compressed / 2**20,
        cost.decoders / 2**20,
        b,
        min(b, fit),
        bounds.target,
        math.ceil(memory.total / max(1, fit) * bounds.target / 2**20) if fit else math.ceil(cost.total / 2**20),
        _BOUND_HINT[bound],
    )


def warn_share_bounds_mix(episodes: int, readers: int, batch: int) -> None:
    """Says that a reader's ``episodes`` (of ``readers`` readers) are too few for the mixing target."""
    b = batch
    if expected_distinct(episodes, b) >= target_distinct(b):
        return
    warn_once(
        "share",
        "%d readers (ranks x workers) leave a reader %d episodes: batches of %d mix at most about %.1f distinct "
        "episodes (target %.1f); fewer DataLoader workers or more episodes restore the mix",
        readers,
        episodes,
        b,
        expected_distinct(episodes, b),
        target_distinct(b),
    )
