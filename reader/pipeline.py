"""One reader's pipeline, as one composition of generator stages.

    planned shards -> fetch (whole shards, read ahead)      stream.fetched_shards
                   -> tar members -> samples               stages.tar_samples (webdataset's tar iterators)
                   -> episodes (validated)                 stages.episodes
                   -> episode shuffle buffer               stages.shuffle_buffer
                   -> anchors from a pool of open episodes pool.schedule (units planned by units.plan_units)
    ... passes repeated until the quota (pad)              stages.cycle_passes
                   -> resume skip, samples / batches       assemble.Assembler (frames from frames.FramePool)

Every random choice derives from (seed, epoch, reader slot, pass); nothing here depends on pid or time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lerobot_wds.reader.assemble import Assembler
from lerobot_wds.reader.decode import DecodeConfig
from lerobot_wds.reader.frames import FramePool
from lerobot_wds.reader.pool import Anchor, schedule
from lerobot_wds.reader.sample import SampleSpec
from lerobot_wds.reader.splitting import epoch_rng
from lerobot_wds.reader.stages import ErrorCounter, cycle_passes, episodes, shuffle_buffer, tar_samples
from lerobot_wds.reader.stream import ShardSpec, StreamConfig, fetched_shards
from lerobot_wds.reader.transport import SlotRing

# The pool grows by one episode every RAMP_ANCHORS anchors at the start of a pass, so a worker's first batch
# waits for a few episodes' bytes and first decodes instead of a whole pool's.
RAMP_ANCHORS = 2


@dataclass(frozen=True)
class ReaderOptions:
    """What one reader's pipeline needs besides its shards (built by the dataset, frozen per iteration)."""

    spec: SampleSpec
    camera_deltas: Mapping[str, tuple[int, ...]]  # every camera, (0,) when not windowed
    shuffle: bool
    seed: int
    epoch: int
    slot: int
    episode_buffer: int
    active_episodes: int
    batch_size: int | None
    decode: DecodeConfig
    stream: StreamConfig


def anchor_pass(specs: Sequence[ShardSpec], opts: ReaderOptions, frames: FramePool, errors: ErrorCounter,
                p: int) -> Iterator[Anchor]:  # fmt: skip
    """One pass over the reader's shards: every anchor of every episode once."""
    shards = fetched_shards(specs, opts.stream)
    eps = episodes(tar_samples(shards, errors), list(opts.spec.camera_keys), errors)
    rng = None
    if opts.shuffle:
        eps = shuffle_buffer(eps, opts.episode_buffer, epoch_rng(opts.seed, opts.epoch, 1, opts.slot, p))
        rng = epoch_rng(opts.seed, opts.epoch, 2, opts.slot, p)
    return schedule(
        eps,
        frames=frames,
        deltas=opts.camera_deltas,
        rng=rng,
        active=opts.active_episodes,
        open_bytes=opts.decode.open_episode_bytes,
        frame_budget=opts.decode.frame_cache_bytes,
        ramp=RAMP_ANCHORS,
        errors=errors,
    )


def reader_stream(specs: Sequence[ShardSpec], opts: ReaderOptions, *, frames: FramePool, errors: ErrorCounter,
                  ring: SlotRing | None, quota: int, skip: int, pass_frames: int, where: str,
                  progress: Any) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Yields this reader's ``quota`` samples (or batches) of the epoch, the first ``skip`` already consumed."""
    anchors = cycle_passes(lambda p: anchor_pass(specs, opts, frames, errors, p), where)
    assembler = Assembler(opts.spec, frames, errors, batch_size=opts.batch_size, ring=ring)
    return assembler.run(anchors, quota=quota, skip=skip, pass_frames=pass_frames, where=where, progress=progress)
