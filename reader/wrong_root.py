"""What a root without ``manifest.json`` is, said one way by every command that reads converted roots.

``LeRobotWdsDataset``, ``inspect``, ``verify``, ``bench`` and ``train`` all need a finished conversion. Given
something else (a folder that does not exist, a LeRobot dataset that was never converted, a conversion still
running or killed before its manifest, or any other folder) they raise the one error built here, which names
the root and says what to run.
"""

from __future__ import annotations

from fsspec import AbstractFileSystem

from lerobot_wds.core.errors import InputError
from lerobot_wds.core.format import MANIFEST_NAME, META_DIR, SHARDS_DIR
from lerobot_wds.core.redact import redact_url
from lerobot_wds.core.urls import join_url
from lerobot_wds.reader.errors import (
    NotConvertedRootError,
    RootNotFoundError,
    UnfinishedConversionError,
)

WORK_DIR = "_convert"  # the converter's bookkeeping folder (convert/manifest_io.py owns its layout)


def not_a_converted_root(name: str) -> NotConvertedRootError:
    """The error for a LeRobot source given where a converted root is expected (``name``: as the user gave it)."""
    name = redact_url(name.rstrip("/") or name)
    return NotConvertedRootError(
        f"{name} is a LeRobot dataset, not a converted root (it has meta/info.json but no {MANIFEST_NAME}): "
        f"run 'lerobot-wds convert {name} DEST' first, then use DEST"
    )


def missing_manifest_error(fs: AbstractFileSystem, path: str, name: str) -> InputError:
    """Classifies a root whose ``manifest.json`` was not found and returns the error to raise.

    Args:
        fs: The root's filesystem.
        path: The root's path on ``fs``.
        name: The root as the user gave it (named in the message).
    """
    path, shown = path.rstrip("/"), redact_url(name.rstrip("/") or name)

    def exists(rel: str) -> bool:
        return _exists(fs, join_url(path, rel) if rel else path)

    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols and not exists(""):  # remote stores cannot always tell a missing folder apart
        return RootNotFoundError(f"{shown}: no such folder; give the root a conversion wrote (its DEST)")
    parent, _, base = path.rpartition("/")
    shown_parent = shown.rstrip("/").rpartition("/")[0] or "."
    if (
        parent
        and base in (MANIFEST_NAME, SHARDS_DIR, META_DIR, WORK_DIR)
        and _exists(fs, f"{parent}/{MANIFEST_NAME}")
    ):
        return NotConvertedRootError(
            f"{shown} is part of the converted root {shown_parent}: give the root itself, {shown_parent}"
        )
    if _isfile(fs, path):
        return NotConvertedRootError(f"{shown} is a file; give the folder a conversion wrote (its DEST)")
    if exists(SHARDS_DIR) or exists(WORK_DIR):
        return UnfinishedConversionError(
            f"{shown}: no {MANIFEST_NAME}, so its conversion has not finished: rerun the same "
            f"'lerobot-wds convert SRC {shown}' command to complete it (after a '--part I/N' array: "
            f"'lerobot-wds finalize {shown}')"
        )
    if exists(f"{META_DIR}/info.json"):
        return not_a_converted_root(name)
    return NotConvertedRootError(
        f"{shown} is not a converted root (no {MANIFEST_NAME}): run 'lerobot-wds convert SRC {shown}' to "
        "convert a LeRobot v3 dataset into it"
    )


def _exists(fs: AbstractFileSystem, path: str) -> bool:
    try:
        return bool(fs.exists(path))
    except Exception:  # noqa: BLE001 - a probe that cannot tell says "no"; the message stays general
        return False


def _isfile(fs: AbstractFileSystem, path: str) -> bool:
    try:
        return bool(fs.isfile(path))
    except Exception:  # noqa: BLE001 - as _exists
        return False
