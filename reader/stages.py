"""Generator stages of the reader pipeline; each takes an iterator (plus keyword options) and returns one.

shard bytes -> tar samples (webdataset's tar iterators) -> episodes -> episode shuffle buffer; the anchor
pool is :mod:`pool`, the composition :mod:`pipeline`. Bad data raises a domain error
naming the shard and member, or with ``on_error="skip"`` is skipped, counted in :class:`ErrorCounter` and logged.
"""

from __future__ import annotations

import io
import logging
import random
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from webdataset.tariterators import group_by_keys, tar_file_expander

from lerobot_wds.reader.episode import Episode, parse_episode
from lerobot_wds.reader.errors import ShardFormatError
from lerobot_wds.reader.format import FormatError, episode_key
from lerobot_wds.reader.stream import ShardSpec

log = logging.getLogger(__name__)
T = TypeVar("T")
OnError = Literal["raise", "skip"]


@dataclass
class ErrorCounter:
    """Counts what ``on_error="skip"`` skipped, with the last messages for diagnosis."""

    policy: OnError = "raise"
    skipped_shards: int = 0
    skipped_episodes: int = 0
    messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.policy not in get_args(OnError):
            raise ValueError(f"on_error={self.policy!r}; expected one of {get_args(OnError)}")

    def handle(self, error: Exception, kind: Literal["shard", "episode"]) -> None:
        """Re-raises under ``raise``; otherwise counts and logs the error."""
        if self.policy == "raise":
            raise error
        if kind == "shard":
            self.skipped_shards += 1
        else:
            self.skipped_episodes += 1
        self.messages = (self.messages + [str(error)])[-20:]
        log.warning("skipping %s: %s", kind, error)


def tar_samples(shards: Iterable[tuple[ShardSpec, bytes]], errors: ErrorCounter) -> Iterator[dict[str, Any]]:
    """Groups each shard's tar members into webdataset samples ``{"__key__", "__url__", suffix: bytes}``.

    Samples must be exactly the manifest's episodes in order: Python's tarfile silently stops at a corrupt
    header after the first member, so a shard that ends early is detected by counting against the manifest.
    """

    def reraise(exn: Exception) -> bool:
        raise exn

    for spec, data in shards:
        expected = [episode_key(e) for e in spec.episodes]
        source = [{"url": spec.url, "stream": io.BytesIO(data)}]
        seen = 0
        try:
            # lcase=False: camera keys are case-sensitive member suffixes
            for sample in group_by_keys(tar_file_expander(source, handler=reraise), lcase=False, handler=reraise):
                want = expected[seen] if seen < len(expected) else "no more samples"
                if sample["__key__"] != want:
                    raise ShardFormatError(
                        f"shard {spec.url}: sample {seen} is {sample['__key__']!r}, manifest expects {want!r}"
                    )
                seen += 1
                yield sample
            if seen != len(expected):
                raise ShardFormatError(
                    f"shard {spec.url}: corrupt or truncated tar: it ends after {seen} of {len(expected)} "
                    f"episodes; missing {expected[seen:]}"
                )
        except ShardFormatError as e:
            errors.handle(e, "shard")
        except (tarfile.TarError, ValueError, OSError, EOFError) as e:
            errors.handle(
                ShardFormatError(f"shard {spec.url}: corrupt tar: {e.args[0] if e.args else e}"), "shard"
            )


def episodes(samples: Iterable[dict[str, Any]], camera_keys: list[str], errors: ErrorCounter) -> Iterator[Episode]:
    """Parses webdataset samples into validated :class:`Episode` objects."""
    for sample in samples:
        try:
            yield parse_episode(sample, camera_keys)
        except FormatError as e:
            errors.handle(e, "episode")


def shuffle_buffer(items: Iterable[T], size: int, rng: random.Random | None) -> Iterator[T]:
    """Classic shuffle buffer: keeps ``size`` items and yields a random one per arrival; pass-through if no rng."""
    if rng is None or size <= 1:
        yield from items
        return
    buf: list[T] = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            i = rng.randrange(len(buf))
            buf[i], buf[-1] = buf[-1], buf[i]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


def cycle_passes(make_pass: Callable[[int], Iterable[T]], where: str) -> Iterator[T]:
    """Chains ``make_pass(0)``, ``make_pass(1)``, ... forever (the consumer stops it); a pass that yields nothing
    raises, since repeating it could never produce the quota."""
    p = 0
    while True:
        produced = False
        for item in make_pass(p):
            produced = True
            yield item
        if not produced:
            raise ShardFormatError(f"{where}: a full pass over this reader's shards produced no frames")
        p += 1
