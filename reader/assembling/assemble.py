"""The last stage of a worker's pipeline: anchors in, samples (or whole batches) out, up to a quota.

It skips the anchors a resumed run already consumed (before any decoding), groups anchors into batches,
builds them from decoded frames, frees each frame right after the sample that uses it last (the scheduler
says which; a finished visit is released whole), counts the mixing it delivered, and applies ``on_error``
to episodes whose frames cannot be decoded: under "skip" the episode's anchors are dropped and the stream
goes on, so the worker still yields exactly its quota.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch.utils.data import default_collate

from lerobot_wds.core.errors import FormatError
from lerobot_wds.reader.assembling.batch import build_batch
from lerobot_wds.reader.assembling.batch_slots import SlotRing
from lerobot_wds.reader.assembling.mixing_tally import MixingTally
from lerobot_wds.reader.assembling.sample import SampleSpec, build_sample
from lerobot_wds.reader.decoding.frames import FramePool
from lerobot_wds.reader.errors import FrameDecodeError
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.reader.scheduling.pool import Anchor


class Assembler:
    """Builds one worker's samples or batches from its anchor stream.

    Args:
        spec: what a sample holds. source: decoded frames of the open visits. errors: the on_error policy.
        batch_size: yield collated batches of this many samples (None: single samples).
        mix_batch: the batch the mixing is counted over (``batch_size``, or the DataLoader's per sample).
        ring: reusable shared-memory batch slots (inside a DataLoader worker) or None.
        on_mix: called with the :class:`MixingTally` after each batch (the dataset's board row copies it).
        on_deliver: called with the anchor of every sample delivered (or skipped as consumed), in order, before
            the sample leaves (the resume journal).
    """

    def __init__(
        self,
        spec: SampleSpec,
        source: FramePool,
        errors: ErrorCounter,
        *,
        batch_size: int | None,
        mix_batch: int | None = None,
        ring: SlotRing | None = None,
        on_mix: Callable[[MixingTally], None] | None = None,
        on_deliver: Callable[[Anchor], None] | None = None,
    ) -> None:
        self.spec, self.source, self.errors = spec, source, errors
        self.batch_size, self.ring = batch_size, ring
        self.mixing, self.on_mix = MixingTally(batch_size or mix_batch or 1), on_mix
        self.bad: set[int] = set()  # episodes whose frames failed to decode under on_error="skip"
        self.on_deliver = on_deliver or (lambda anchor: None)

    def run(
        self,
        stream: Iterable[Anchor],
        *,
        quota: int,
        skip: int,
        pass_frames: int,
        where: str,
        progress: Callable[[int], None],
    ) -> Iterator[dict[str, Any]]:
        """Yields samples (or batches) until ``quota`` samples are out, the first ``skip`` counted as done.

        The first ``skip`` anchors are consumed without decoding (their frames are never decoded; finished
        visits are released). ``progress(n)`` is called with the running count before each yield. A whole
        pass (``pass_frames`` anchors) without a single decodable frame is an error rather than an endless loop.
        """
        unusable = 0
        yielded = skip
        pending: list[Anchor] = []
        group = self.batch_size or 1
        for anchor in stream:
            if skip > 0:
                skip -= 1
                self.on_deliver(anchor)
                self._finish([anchor])
                continue
            if anchor.episode.index in self.bad:
                self.source.release(anchor.visit)
                unusable += 1
                if unusable > pass_frames:
                    raise FrameDecodeError(f"{where}: a full pass of anchors produced no decodable frame")
                continue
            pending.append(anchor)
            if len(pending) < min(group, quota - yielded):
                continue
            out, n = self.build(pending)
            self._finish(pending)
            for a in pending:
                if a.episode.index not in self.bad:
                    self.on_deliver(a)
            if n:
                self.mixing.add(a.episode.index for a in pending if a.episode.index not in self.bad)
                if self.on_mix is not None:
                    self.on_mix(self.mixing)
            pending = []
            if n == 0:
                continue
            unusable = 0
            yielded += n
            progress(yielded)
            while out:
                yield out.pop(0)  # not held here while the next batch is built: its slot can be reused
            if yielded >= quota:
                return
        if pending:  # the stream ended short of the quota (episodes skipped under on_error="skip")
            out, n = self.build(pending)
            self._finish(pending)
            for a in pending:
                if a.episode.index not in self.bad:
                    self.on_deliver(a)
            progress(yielded + n)
            yield from out

    def build(self, items: list[Anchor]) -> tuple[list[dict[str, Any]], int]:
        """Builds the samples (or the one batch) of ``items``; returns them and how many samples they hold.

        An episode whose data fails is handled per ``on_error`` (``bad`` collects it); in batch mode the batch
        is then rebuilt sample by sample without it, so it may come out short.
        """
        if self.batch_size is not None:
            try:
                return [build_batch(items, self.spec, self.source, self.ring, self._finish_one)], len(items)
            except FormatError:
                pass  # find the failing episode(s) sample by sample below
        good = []
        for anchor in items:
            if anchor.episode.index in self.bad:
                continue
            try:
                good.append(build_sample(anchor, self.spec, self.source))
                self._finish_one(anchor)
            except FormatError as e:
                self.errors.handle(e, "episode", anchor.episode.index)
                self.bad.add(anchor.episode.index)
        if self.batch_size is None or not good:
            return good, len(good)
        return [default_collate(good)], len(good)

    def _finish(self, items: list[Anchor]) -> None:
        for anchor in items:
            self._finish_one(anchor)

    def _finish_one(self, anchor: Anchor) -> None:
        """Drops the anchor's frames at their last use, or the whole visit after its last anchor (idempotent:
        a batch rebuilt sample by sample after an error finishes its anchors again)."""
        if anchor.last or anchor.episode.index in self.bad:
            self.source.release(anchor.visit)
            return
        for cam, frames in anchor.drops.items():
            self.source.drop(anchor.visit, cam, frames)
