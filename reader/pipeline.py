"""One reader's pipeline, as one composition of generator stages.

    planned segments -> reads (whole shards or ranges)     planning.reads.plan_reads
                   -> fetch, check digests, read ahead     fetching.fetch.fetched_reads
                   -> tar members -> samples               parsing.tar_episodes.tar_samples (webdataset's)
                   -> episodes (validated)                 parsing.tar_episodes.episodes
                   -> the reader's anchor ranges           parsing.tar_episodes.with_anchor_ranges
                   -> episode shuffle buffer               scheduling.passes.shuffle_buffer
                   -> anchors from a pool of open episodes scheduling.pool.schedule (scheduling.units;
                                                           admitted: scheduling.admission, under the
                                                           frame pool's budget; how many: scheduling.mixing)
    ... passes repeated until the quota (pad)              scheduling.passes.cycle_passes
                   -> skipped episodes not refilled        without_refill
                   -> resume skip, samples / batches       assembling.assemble.Assembler
                                                           (frames from decoding.frames.FramePool)

Every random choice derives from (seed, epoch, reader slot, pass); nothing here depends on pid or time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lerobot_wds.core.format import ShardInfo
from lerobot_wds.reader.assembling.assemble import Assembler
from lerobot_wds.reader.assembling.batch_slots import SlotRing
from lerobot_wds.reader.assembling.mixing_tally import MixingTally
from lerobot_wds.reader.assembling.sample import SampleSpec
from lerobot_wds.reader.decoding.decode import DecodeConfig
from lerobot_wds.reader.decoding.frames import FramePool
from lerobot_wds.reader.fetching.fetch import ReadCounters, StreamConfig, fetched_reads
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.reader.parsing.tar_episodes import episodes, tar_samples, with_anchor_ranges
from lerobot_wds.reader.planning.reads import plan_reads
from lerobot_wds.reader.planning.splitting import SlotPlan, epoch_rng
from lerobot_wds.reader.scheduling.admission import Admission, PoolBounds
from lerobot_wds.reader.scheduling.mixing import open_target
from lerobot_wds.reader.scheduling.passes import cycle_passes, shuffle_buffer
from lerobot_wds.reader.scheduling.pool import Anchor, schedule

DEFAULT_ACTIVE = 64  # open visits the pool may hold beyond the mixing target while the default budgets allow


@dataclass(frozen=True)
class ReaderOptions:
    """What one reader's pipeline needs besides its shards (built by the dataset, frozen per iteration)."""

    root: str
    shards: Mapping[str, ShardInfo]  # manifest entries by path
    spec: SampleSpec
    camera_deltas: Mapping[str, tuple[int, ...]]  # every camera, (0,) when not windowed
    shuffle: bool
    seed: int
    epoch: int
    slot: int
    episode_buffer: int
    active_episodes: int | None  # None: DEFAULT_ACTIVE, or the mixing target's open visits when more
    batch_size: int | None
    mix_batch: int  # the batch every run of this many samples forms (batch_size, or the DataLoader's)
    decode: DecodeConfig
    stream: StreamConfig
    fps: float | None = None  # the manifest's: every episode JSON must repeat it


def anchor_pass(
    plan: SlotPlan,
    opts: ReaderOptions,
    memory: Admission,
    errors: ErrorCounter,
    p: int,
    reads_counted: ReadCounters | None = None,
) -> Iterator[Anchor]:
    """One pass over the reader's segments: every planned anchor once."""
    cfg = opts.stream
    reads = plan_reads(
        plan.segments, opts.shards, opts.root, max_bytes=cfg.max_read_bytes, split_first=cfg.split_first_read
    )
    samples = tar_samples(fetched_reads(reads, cfg, reads_counted, skip=errors.policy == "skip"), errors)
    ranges: dict[int, list[tuple[int, int, tuple[int, int] | None]]] = {}
    for s in plan.segments:
        ranges.setdefault(s.ref.episode, []).append((s.lo, s.hi, s.order))
    eps = episodes(samples, list(opts.spec.camera_keys), errors, opts.fps)
    eps = with_anchor_ranges(eps, ranges)
    rng = None
    if opts.shuffle:
        eps = shuffle_buffer(eps, opts.episode_buffer, epoch_rng(opts.seed, opts.epoch, 1, opts.slot, p))
        rng = epoch_rng(opts.seed, opts.epoch, 2, opts.slot, p)
    return schedule(
        eps,
        memory=memory,
        deltas=opts.camera_deltas,
        rng=rng,
        batch=opts.mix_batch,
        errors=errors,
        lookahead=opts.batch_size or 1,
        visit_rng=lambda ep: epoch_rng(opts.seed, opts.epoch, 4, ep.index, ep.anchor_range[0]),
    )


def reader_memory(opts: ReaderOptions, frames: FramePool) -> Admission:
    """A reader's admission of open visits over ``frames`` (its planned peak is ``stats()``' planned peak)."""
    return Admission(pool_bounds(opts), frames)


def pool_bounds(opts: ReaderOptions) -> PoolBounds:
    """The bounds of a reader's pool of open visits, from its options (see :mod:`admission`)."""
    target = open_target(opts.mix_batch)
    return PoolBounds(
        active=opts.active_episodes or max(DEFAULT_ACTIVE, target),
        target=target,
        open_bytes=opts.decode.open_episode_bytes,
        memory=opts.decode.memory_limit_bytes,
    )


def without_refill(anchors: Iterable[Anchor], plan: SlotPlan, errors: ErrorCounter) -> Iterator[Anchor]:
    """Ends the stream at the quota less the planned anchors of the episodes skipped this epoch.

    A skipped episode's frames are not replaced by repeats of other episodes: the reader repeats only the
    padding its ``uneven`` rule planned, so an epoch with skips is that much shorter.
    """
    planned: dict[int, int] = {}
    for seg in plan.segments:
        planned[seg.ref.episode] = planned.get(seg.ref.episode, 0) + seg.frames
    handed: dict[int, int] = {}  # anchors handed on per episode (a bad episode's do not count)
    total = 0
    for anchor in anchors:
        if errors.bad:
            lost = sum(planned.get(e, 0) for e in errors.bad)
            if total - sum(handed.get(e, 0) for e in errors.bad) >= plan.quota - lost:
                return
        episode = anchor.episode.index
        handed[episode] = handed.get(episode, 0) + 1
        total += 1
        yield anchor


def reader_stream(
    plan: SlotPlan,
    opts: ReaderOptions,
    *,
    memory: Admission,
    errors: ErrorCounter,
    ring: SlotRing | None,
    skip: int,
    where: str,
    progress: Any,
    on_deliver: Callable[[Anchor], None] | None = None,
    reads: ReadCounters | None = None,
    on_mix: Callable[[MixingTally], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yields this reader's ``plan.quota`` samples (or batches) of the epoch, the first ``skip`` consumed.

    ``memory`` admits the open visits of every pass (its frame pool decodes them, see :func:`reader_memory`);
    ``on_deliver`` is called with every delivered sample's anchor, in order (the resume journal), ``reads``
    counts the read retries and timeouts, ``on_mix`` receives the mixing delivered
    (``LeRobotWdsDataset.stats()``).
    """
    anchors = cycle_passes(
        lambda p: anchor_pass(plan, opts, memory, errors, p, reads), where, lambda: bool(errors.bad)
    )
    anchors = without_refill(anchors, plan, errors)
    assembler = Assembler(
        opts.spec,
        memory.pool,
        errors,
        batch_size=opts.batch_size,
        mix_batch=opts.mix_batch,
        ring=ring,
        on_mix=on_mix,
        on_deliver=on_deliver,
    )
    return assembler.run(
        anchors, quota=plan.quota, skip=skip, pass_frames=plan.frames, where=where, progress=progress
    )
