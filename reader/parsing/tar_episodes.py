"""Generator stages of the reader pipeline; each takes an iterator (plus keyword options) and returns one.

shard bytes -> tar samples (webdataset's tar iterators) -> episodes -> the reader's anchor ranges; the episode
shuffle buffer and the passes are :mod:`passes`, the anchor pool :mod:`pool`, the composition :mod:`pipeline`.
Bad data raises a domain error naming the shard and member, or with ``on_error="skip"`` is skipped, counted in
:class:`ErrorCounter` and logged.
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from webdataset.tariterators import group_by_keys, tar_file_expander

from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import episode_index_from_key, episode_key
from lerobot_wds.reader.errors import IntegrityError, ShardFormatError
from lerobot_wds.reader.fetching.fetch import Fetched
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.reader.parsing.episode import Episode, parse_episode
from lerobot_wds.reader.planning.reads import episode_slices

log = logging.getLogger(__name__)


def _parse_tar(url: str, data: bytes | memoryview) -> Iterator[dict[str, Any]]:
    def reraise(exn: Exception) -> bool:
        raise exn

    source = [{"url": url, "stream": io.BytesIO(data)}]
    # lcase=False: camera keys are case-sensitive member suffixes
    yield from group_by_keys(tar_file_expander(source, handler=reraise), lcase=False, handler=reraise)


def _checked(url: str, data: bytes | memoryview, expected: list[str]) -> Iterator[dict[str, Any]]:
    """Parses tar bytes whose samples must be exactly ``expected``, in order.

    Python's tarfile silently stops at a corrupt header after the first member, so bytes that end early are
    detected by counting against the manifest.
    """
    seen = 0
    try:
        for sample in _parse_tar(url, data):
            want = expected[seen] if seen < len(expected) else "no more samples"
            if sample["__key__"] != want:
                raise ShardFormatError(
                    f"shard {url}: sample {seen} is {sample['__key__']!r}, manifest expects {want!r}"
                )
            seen += 1
            yield sample
    except ShardFormatError:
        raise
    except (tarfile.TarError, ValueError, OSError, EOFError) as e:
        raise ShardFormatError(f"shard {url}: corrupt tar: {e.args[0] if e.args else e}") from e
    if seen != len(expected):
        raise ShardFormatError(
            f"shard {url}: corrupt or truncated tar: it ends after {seen} of {len(expected)} episodes; "
            f"missing {expected[seen:]}"
        )


def tar_samples(reads: Iterable[Fetched], errors: ErrorCounter) -> Iterator[dict[str, Any]]:
    """Turns fetched reads into webdataset samples ``{"__key__", "__url__", suffix: bytes}`` of their episodes.

    Each episode's bytes (its extent) are checked and parsed on their own: a corrupt episode is one error
    naming shard and episode (skipped alone under ``on_error="skip"``).
    """
    for fetched in reads:
        read, url = fetched.read, fetched.read.url
        for episode, piece in episode_slices(read, fetched.data).items():
            if errors.is_bad(episode):
                continue  # skipped earlier in this epoch: counted and logged once
            try:
                if episode in fetched.failures:
                    raise IntegrityError(fetched.failures[episode])
                # a slice ends at a member boundary without end-of-archive blocks: tarfile stops there cleanly.
                # Parsed whole before anything is yielded, so an episode is either delivered or skipped, never
                # both (bytes after a good sample would otherwise fail the slice after it was handed on).
                parsed = list(_checked(url, piece, [episode_key(episode)]))
            except ShardFormatError as e:
                errors.handle(e, "episode", episode)
                continue
            yield from parsed


def episodes(
    samples: Iterable[dict[str, Any]], camera_keys: list[str], errors: ErrorCounter, fps: float | None = None
) -> Iterator[Episode]:
    """Parses webdataset samples into validated :class:`Episode` objects."""
    for sample in samples:
        try:
            yield parse_episode(sample, camera_keys, fps)
        except FormatError as e:
            errors.handle(e, "episode", episode_index_from_key(sample["__key__"]))  # checked by tar_samples


def with_anchor_ranges(
    eps: Iterable[Episode], ranges: Mapping[int, Sequence[tuple[int, int, tuple[int, int] | None]]]
) -> Iterator[Episode]:
    """Gives each episode the anchor range (and serving-order piece) this reader was planned to yield (see
    :mod:`splitting`), once per planned visit of it; an episode without one is dropped."""
    for ep in eps:
        for lo, hi, order in ranges.get(ep.index, ()):
            yield ep if (lo, hi, order) == (0, ep.length, None) else replace(ep, anchors=(lo, hi), order=order)
