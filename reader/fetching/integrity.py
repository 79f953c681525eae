"""Fetched bytes checked against the manifest: every episode's sha256 (pure)."""

from __future__ import annotations

import hashlib

from lerobot_wds.reader.planning.reads import Read, episode_slices


def integrity_failures(read: Read, data: bytes) -> dict[int, str]:
    """Checks read bytes against the manifest's digest of each episode.

    Returns the failures as ``{episode: message}``; empty when every byte checks.
    """
    where = f"shard {read.url}"
    bad: dict[int, str] = {}
    for ext, piece in zip(read.extents, episode_slices(read, data).values(), strict=True):
        got = hashlib.sha256(piece).hexdigest()
        if got != ext.sha256:
            bad[ext.episode] = (
                f"{where}, episode {ext.episode} (bytes {ext.offset}..{ext.offset + ext.length}): "
                f"sha256 {got}, manifest says {ext.sha256}"
            )
    return bad
