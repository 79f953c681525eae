"""The last stage of a worker's pipeline: anchors in, samples (or whole batches) out, up to a quota.

It groups anchors into batches, builds them from decoded frames, frees decoded frames behind the anchors
(a finished episode visit is released; without windows, each anchor's block as soon as all its anchors are
built), and applies ``on_error`` to episodes whose frames cannot be decoded: under "skip" the episode's
anchors are dropped and the stream goes on, so the worker still yields exactly its quota.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch.utils.data import default_collate

from lerobot_wds.reader.batch import build_batch
from lerobot_wds.reader.decode import FrameSource
from lerobot_wds.reader.episode import Episode
from lerobot_wds.reader.errors import FrameDecodeError
from lerobot_wds.reader.format import FormatError
from lerobot_wds.reader.sample import SampleSpec, build_sample
from lerobot_wds.reader.stages import ErrorCounter
from lerobot_wds.reader.transport import SlotRing

Anchor = tuple[Episode, int, bool]  # episode, frame, last anchor of this episode visit


class Assembler:
    """Builds one worker's samples or batches from its anchor stream.

    Args:
        spec: what a sample holds. source: decoded frames of the open episodes. errors: the on_error policy.
        batch_size: yield collated batches of this many samples (None: single samples).
        anchor_only: samples show their anchor frame only (no windows), so blocks can be dropped per anchor.
        ring: reusable shared-memory batch slots (inside a DataLoader worker) or None.
    """

    def __init__(
        self,
        spec: SampleSpec,
        source: FrameSource,
        errors: ErrorCounter,
        *,
        batch_size: int | None,
        anchor_only: bool,
        ring: SlotRing | None = None,
    ) -> None:
        self.spec, self.source, self.errors = spec, source, errors
        self.batch_size, self.anchor_only, self.ring = batch_size, anchor_only, ring
        self.bad: set[int] = set()  # episodes whose frames failed to decode under on_error="skip"

    def run(
        self,
        stream: Iterable[Anchor],
        *,
        quota: int,
        yielded: int,
        pass_frames: int,
        where: str,
        progress: Callable[[int], None],
    ) -> Iterator[dict[str, Any]]:
        """Yields samples (or batches) until ``quota`` samples are out, starting from ``yielded`` done.

        ``progress(n)`` is called with the running count before each yield. A whole pass (``pass_frames``
        anchors) without a single decodable frame is an error rather than an endless loop.
        """
        unusable = 0
        pending: list[Anchor] = []
        group = self.batch_size or 1
        for episode, frame, last in stream:
            if episode.index in self.bad:
                unusable += 1
                if unusable > pass_frames:
                    raise FrameDecodeError(f"{where}: a full pass of anchors produced no decodable frame")
                continue
            pending.append((episode, frame, last))
            if len(pending) < min(group, quota - yielded):
                continue
            out, n = self.build(pending)
            self._finish(pending)
            pending = []
            if n == 0:
                continue
            unusable = 0
            yielded += n
            progress(yielded)
            yield from out
            if yielded >= quota:
                return

    def build(self, items: list[Anchor]) -> tuple[list[dict[str, Any]], int]:
        """Builds the samples (or the one batch) of ``items``; returns them and how many samples they hold.

        An episode whose data fails is handled per ``on_error`` (``bad`` collects it); in batch mode the batch
        is then rebuilt sample by sample without it, so it may come out short.
        """
        if self.batch_size is not None:
            try:
                return [build_batch([(e, f) for e, f, _ in items], self.spec, self.source, self.ring)], len(items)
            except FormatError:
                pass  # find the failing episode(s) sample by sample below
        good = []
        for episode, frame, _ in items:
            if episode.index in self.bad:
                continue
            try:
                good.append(build_sample(episode, frame, self.spec, self.source))
            except FormatError as e:
                self.errors.handle(e, "episode")
                self.bad.add(episode.index)
        if self.batch_size is None or not good:
            return good, len(good)
        return [default_collate(good)], len(good)

    def _finish(self, items: list[Anchor]) -> None:
        for episode, frame, last in items:
            if last or episode.index in self.bad:
                self.source.release(episode)
            elif self.anchor_only:
                self.source.done(episode, frame)
