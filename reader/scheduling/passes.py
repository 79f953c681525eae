"""The order episodes enter a reader's pool, and its passes: generator stages around :mod:`pool`.

``shuffle_buffer`` (an optional classic shuffle buffer of compressed episodes ahead of the pool) and
``cycle_passes`` (a reader's passes over its segments, chained until the consumer has its quota: the padding of
``uneven="pad"``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from lerobot_wds.reader.errors import ShardFormatError

T = TypeVar("T")


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


def cycle_passes(
    make_pass: Callable[[int], Iterable[T]], where: str, skipped: Callable[[], bool] | None = None
) -> Iterator[T]:
    """Chains ``make_pass(0)``, ``make_pass(1)``, ... forever (the consumer stops it); a pass that yields nothing
    raises, since repeating it could never produce the quota, unless ``skipped()`` says its episodes were
    skipped under ``on_error="skip"`` (then the stream ends)."""
    p = 0
    while True:
        produced = False
        for item in make_pass(p):
            produced = True
            yield item
        if not produced:
            if skipped is not None and skipped():
                return
            raise ShardFormatError(f"{where}: a full pass over this reader's shards produced no frames")
        p += 1
