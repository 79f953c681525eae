"""``lerobot-wds inspect``: what a converted root holds, from its manifest plus one episode JSON.

Nothing else is downloaded: camera codecs and resolutions come from the first episode's ``<key>.json``, which
is the first member of the first shard, read with ranged GETs of just the start of that shard. Every read is
retried under the reader's policy and read timeout; a source that keeps failing is one line, exit 2.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from functools import partial
from typing import Any

import fsspec

from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import MANIFEST_NAME, EpisodeMeta, Manifest
from lerobot_wds.core.redact import redact_url
from lerobot_wds.core.retry import RetryPolicy, read_with_retries
from lerobot_wds.core.timeouts import with_read_timeout
from lerobot_wds.core.urls import join_url
from lerobot_wds.reader.fetching.fetch import StreamConfig
from lerobot_wds.reader.wrong_root import missing_manifest_error

_HEAD_BYTES = 16 * 1024  # the first read of the first shard: only its first member (an episode JSON) is wanted
_HEADER_MAX = 1024 * 1024  # a first member's headers (pax, long names) longer than this: not our shard
_STREAM = StreamConfig()  # the reader's defaults: its retry policy and read timeout
_POLICY = _STREAM.retry_policy()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``inspect`` subcommand."""
    p = subparsers.add_parser(
        "inspect",
        help="summarise a converted root: episodes, frames, shards, sizes, cameras, skipped episodes",
        description="Summarise DEST (local path or fsspec URL) from its manifest.json and the first episode's "
        "JSON (read from the start of the first shard; nothing else is read).",
    )
    p.add_argument("dest", help="converted root (path or fsspec URL)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--dest-options", type=json.loads, default=None, help="fsspec storage options (JSON)")
    p.set_defaults(func=run)


def first_episode_meta(
    fs: fsspec.AbstractFileSystem, root: str, manifest: Manifest, policy: RetryPolicy = _POLICY, name: str = ""
) -> EpisodeMeta | None:
    """Reads the first shard's first member, which must be its first episode's JSON; None without shards.

    Only the shard's head is read, in ranged GETs: 16 KiB, then the rest of the span the first member's header
    gives (or, for headers longer than the head so far, up to 4x as much, at most 1 MiB). Each GET is retried
    under ``policy`` (a reset, or a stall once the read timeout fires); the bytes are parsed here, so a
    malformed shard is a :class:`FormatError` naming it. ``name``: the root as the user gave it, for messages.
    """
    if not manifest.shards:
        return None
    shard = manifest.shards[0]
    if shard.bytes <= 0:
        raise FormatError(f"{shard.path}: the manifest lists {shard.bytes} bytes, expected a non-empty tar")
    url, what = join_url(root, shard.path), f"{name or root}/{shard.path}"
    head, n = b"", min(_HEAD_BYTES, shard.bytes)
    while True:
        head += read_with_retries(partial(fs.cat_file, url, start=len(head), end=n), what=what, policy=policy)
        try:
            return _parse_first_member(head, shard.path)
        except _Truncated as t:
            more = t.needed if t.needed is not None else (4 * n if n < _HEADER_MAX else 0)
            if len(head) < n or more <= n or n >= shard.bytes:
                found = f"no complete first member in its first {len(head)} bytes ({t})"
                raise FormatError(f"{shard.path}: {found}") from None
            n = min(more, shard.bytes)


class _Truncated(Exception):
    """The head read ends inside the first member (``needed``: the bytes it spans) or its header (None)."""

    def __init__(self, reason: str, needed: int | None = None) -> None:
        super().__init__(reason)
        self.needed = needed


def _parse_first_member(head: bytes, shard: str) -> EpisodeMeta:
    try:  # stream mode reads the first header on opening, and never seeks to the end
        tar = tarfile.open(fileobj=io.BytesIO(head), mode="r|")
        info = tar.next()
    except tarfile.ReadError as e:
        raise _Truncated(str(e)) from None
    with tar:
        if info is None or not info.isfile() or not info.name.endswith(".json"):
            found = "nothing" if info is None else repr(info.name)
            raise FormatError(f"{shard}: first member is {found}, expected the first episode's <key>.json")
        span = info.offset_data + info.size
        if span > len(head):
            raise _Truncated(f"{info.name} spans {span} bytes", span)
        member = tar.extractfile(info)
        assert member is not None  # a regular file (checked above) always has a reader
        data = member.read()
    return EpisodeMeta.from_json_bytes(data, where=f"{shard}/{info.name}")


def summarize(manifest: Manifest, first: EpisodeMeta | None) -> dict[str, Any]:
    """Returns the summary as plain data (also the ``--json`` output)."""
    cameras = {}
    for cam in manifest.camera_keys:
        cm = first.cameras.get(cam) if first is not None else None
        shape = manifest.features.get(cam, {}).get("shape")
        cameras[cam] = {
            "codec": cm.codec if cm else None,
            "width": cm.width if cm else None,
            "height": cm.height if cm else None,
            "feature_shape": shape,
        }
    return {
        "format": f"{manifest.format} v{manifest.format_version}",
        "source": manifest.source,
        "fps": manifest.fps,
        "episodes": manifest.total_episodes,
        "frames": manifest.total_frames,
        "hours": manifest.total_frames / manifest.fps / 3600 if manifest.fps else None,
        "shards": len(manifest.shards),
        "bytes": manifest.total_bytes,
        "cameras_from_episode": first.episode_index if first is not None else None,
        "cameras": cameras,
        "skipped": manifest.skipped,
        "options": manifest.options,
        "shard_table": [
            {"path": s.path, "bytes": s.bytes, "episodes": len(s.episodes), "frames": s.frames}
            for s in manifest.shards
        ],
    }


def render(root: str, s: dict[str, Any]) -> str:
    """Renders the summary as text with a per-shard table."""
    lines = [
        f"{root} ({s['format']})",
        f"source:   {s['source'].get('url', s['source'])}",
        f"fps:      {s['fps']:g}",
        f"episodes: {s['episodes']}",
        f"frames:   {s['frames']} ({s['hours'] * 3600:.1f} s)"
        if s["hours"] is not None
        else f"frames: {s['frames']}",
        f"shards:   {s['shards']} ({s['bytes'] / 1e6:.2f} MB)",
        f"skipped:  {len(s['skipped'])} episodes",
        *(f"  episode {e.get('episode_index')}: {e.get('reason', '')}" for e in s["skipped"]),
        f"cameras (from episode {s['cameras_from_episode']}):",
    ]
    for cam, c in s["cameras"].items():
        # height x width, as LeRobot's feature shapes and the README write it (240x320: 240 rows of 320 pixels)
        res = f"{c['height']}x{c['width']} (HxW)" if c["width"] is not None else "unknown (no shard)"
        lines.append(f"  {cam}: {c['codec'] or '?'} {res}")
    width = max([len("path"), *(len(r["path"]) for r in s["shard_table"])])
    lines.append(f"{'path':<{width}}  {'MB':>9}  {'episodes':>8}  {'frames':>9}")
    for r in s["shard_table"]:
        lines.append(f"{r['path']:<{width}}  {r['bytes'] / 1e6:>9.3f}  {r['episodes']:>8}  {r['frames']:>9}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # a stalled server raises a read timeout (retried) instead of hanging, unless --dest-options set their own
    options = with_read_timeout(args.dest, args.dest_options or {}, _STREAM.read_timeout_s)
    fs, root = fsspec.core.url_to_fs(args.dest, **options)
    root, name = root.rstrip("/"), args.dest.rstrip("/")
    try:
        url = join_url(root, MANIFEST_NAME)
        manifest_read = manifest_parsed = False
        data = read_with_retries(lambda: fs.cat_file(url), what=f"{name}/{MANIFEST_NAME}", policy=_POLICY)
        manifest_read = True
        manifest = Manifest.from_json_bytes(data, where=f"{name}/{MANIFEST_NAME}")
        manifest_parsed = True
        first = first_episode_meta(fs, root, manifest, name=name)
    except FileNotFoundError as e:
        if not manifest_read:
            print(f"lerobot-wds inspect: error: {missing_manifest_error(fs, root, args.dest)}", file=sys.stderr)
            return 2
        print(f"lerobot-wds inspect: error: {redact_url(name)}: missing {e.filename or e}", file=sys.stderr)
        return 1
    except FormatError as e:  # no readable manifest: an invalid root (2); a bad shard behind it: the data (1)
        print(f"lerobot-wds inspect: error: {redact_url(name)}: {e}", file=sys.stderr)
        return 1 if manifest_parsed else 2
    summary = summarize(manifest, first)
    print(json.dumps(summary, indent=1) if args.json else render(redact_url(args.dest), summary))
    return 0
