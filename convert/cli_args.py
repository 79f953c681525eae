"""Argument types shared by the subcommands' parsers (the converter's and the tools', which import it), and
the check of where ``convert`` may write (:func:`check_dest`).

``convert`` never writes into its source, over a file or into someone else's folder.

Checked before anything is written. DEST must not be the source, lie inside it, or contain it (a conversion
written into a LeRobot dataset changes the dataset; one that contains it would list the source among its own
files); an existing DEST must be a folder, either empty or holding a conversion (``manifest.json``, the
``_convert/`` bookkeeping, or only the folders a conversion writes), which the converter then resumes or
refuses by its recorded source and options. Paths are compared after resolving symlinks and ``..`` for
local roots, as normalised URLs for remote ones.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from lerobot_wds.convert.errors import DestInputError
from lerobot_wds.core.format import MANIFEST_NAME, META_DIR, SHARDS_DIR
from lerobot_wds.core.redact import redact_url


def json_object(text: str) -> dict[str, Any]:
    """Parses a JSON object argument (e.g. fsspec storage options); argparse reports anything else."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _normalised(url: str) -> tuple[str, str]:
    """``(protocol, path)`` of a root: local paths resolved (symlinks, ``..``), URLs stripped of slashes."""
    protocol, sep, rest = url.partition("://")
    if not sep or protocol in ("file", "local"):
        return "file", str(Path(os.path.expanduser(rest if sep else url)).resolve())
    return protocol, rest.rstrip("/")


def _within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def check_dest(source: str, dest: str) -> None:
    """Raises :class:`DestInputError` naming DEST and SRC when ``convert`` must not write into DEST."""
    (sp, spath), (dp, dpath) = _normalised(source), _normalised(dest)
    shown_src, shown_dest = redact_url(source), redact_url(dest)
    if sp == dp:
        if spath == dpath:
            raise DestInputError(f"DEST {shown_dest} is the source: give a new or empty folder for the conversion")
        if _within(dpath, spath):
            raise DestInputError(
                f"DEST {shown_dest} is inside the source {shown_src}: nothing is written into a source dataset; "
                "give a folder outside it"
            )
        if _within(spath, dpath):
            raise DestInputError(
                f"DEST {shown_dest} contains the source {shown_src}: give a folder that does not hold the source"
            )
    if dp != "file":
        return  # a remote prefix is not listed here: the converter refuses one holding another conversion
    path = Path(dpath)
    if path.exists() and not path.is_dir():
        raise DestInputError(f"DEST {shown_dest} is a file, not a folder: give a new or empty folder")
    if not path.is_dir():
        return
    from lerobot_wds.convert.manifest_io import WORK_DIR  # the sink's stack, imported only by convert

    entries = {e.name for e in path.iterdir()}
    written = {MANIFEST_NAME, WORK_DIR, META_DIR, SHARDS_DIR}  # a folder holding only these: a conversion
    if entries and not ({MANIFEST_NAME, WORK_DIR} & entries) and not entries <= written:
        shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise DestInputError(
            f"DEST {shown_dest} is a non-empty folder holding no conversion ({shown}): give a new or empty "
            "folder, or the folder of an earlier conversion of this source to resume it"
        )
