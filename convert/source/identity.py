"""A source's identity: its normalized location and a fingerprint of its content, never the string typed.

The manifest's ``source`` entry and every shard's plan key are built from it, so a re-run with the same source
spelled differently (``./data`` after a ``cd``, the absolute path, a URL with other credentials) resumes the
same conversion, and a changed dataset at the same place is told apart.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

from lerobot_wds.convert.source.lerobot import LeRobotSource
from lerobot_wds.convert.source.table import EpisodeRecord
from lerobot_wds.core.redact import redact_url


def source_location(url: str) -> str:
    """Returns where a source is, however it was typed: an absolute local path, or the URL without credentials.

    ``./data``, ``data/`` and ``/home/me/data`` (from ``/home/me``) are one location; ``file://`` URLs are paths.
    """
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" not in url:
        return os.path.normpath(os.path.abspath(os.path.expanduser(url)))
    return redact_url(url).rstrip("/")


def episodes_fingerprint(records: Iterable[EpisodeRecord]) -> str:
    """Returns the sha256 of the episode table the conversion reads (lengths, rows and video spans).

    The digest is that of the table's JSON list (``json.dumps(rows, sort_keys=True)``), hashed row by row so
    the list is never held whole.
    """
    digest = hashlib.sha256(b"[")
    for i, rec in enumerate(records):
        row = [
            rec.episode_index,
            rec.length,
            list(rec.tasks),
            rec.dataset_from_index,
            rec.dataset_to_index,
            rec.data_path,
            {cam: [v.path, v.from_timestamp, v.to_timestamp] for cam, v in sorted(rec.videos.items())},
        ]
        digest.update((", " if i else "").encode() + json.dumps(row, sort_keys=True).encode())
    digest.update(b"]")
    return digest.hexdigest()


def describe(source: LeRobotSource) -> dict[str, Any]:
    """Returns the manifest's ``source`` entry: the source's identity.

    A source is its normalized location (:func:`source_location`: never the string as typed, never a
    credential) and its content (info.json and the episode table), so a re-run from another working directory
    or with the absolute path resumes the same conversion.
    """
    return {
        "url": source_location(source.url),
        "codebase_version": source.info.get("codebase_version"),
        "info_sha256": hashlib.sha256(source.info_bytes).hexdigest(),
        "episodes_sha256": episodes_fingerprint(source.episodes.records()),
        "total_episodes": len(source.episodes),
    }
