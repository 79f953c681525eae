"""``lerobot-wds inspect``: what a converted root holds, from its manifest plus one episode JSON.

Nothing else is downloaded: camera codecs and resolutions come from the first episode's ``<key>.json``, which
is the first member of the first shard, read by streaming just the start of that shard.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from typing import Any

import fsspec

from lerobot_wds.reader.format import MANIFEST_NAME, EpisodeMeta, FormatError, Manifest

_HEAD_BLOCK = 16 * 1024  # remote files read in small blocks: only the shard's first member is wanted


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``inspect`` subcommand."""
    p = subparsers.add_parser(
        "inspect",
        help="summarise a converted root: episodes, frames, shards, sizes, cameras, skipped episodes",
        description="Summarise DEST (local path or fsspec URL) from its manifest.json and the first episode's "
        "JSON (streamed from the start of the first shard; nothing else is read).",
    )
    p.add_argument("dest", help="converted root (path or fsspec URL)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--dest-options", type=json.loads, default=None, help="fsspec storage options (JSON)")
    p.set_defaults(func=run)


def first_episode_meta(fs: fsspec.AbstractFileSystem, root: str, manifest: Manifest) -> EpisodeMeta | None:
    """Streams the first shard's first member, which must be its first episode's JSON; None without shards."""
    if not manifest.shards:
        return None
    shard = manifest.shards[0].path
    with fs.open(f"{root}/{shard}", "rb", block_size=_HEAD_BLOCK) as f:
        with tarfile.open(fileobj=f, mode="r|") as tar:  # stream mode: no seek to the end, no index
            info = tar.next()
            if info is None or not info.isfile() or not info.name.endswith(".json"):
                found = "nothing" if info is None else repr(info.name)
                raise FormatError(f"{shard}: first member is {found}, expected the first episode's <key>.json")
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
        res = f"{c['width']}x{c['height']}" if c["width"] is not None else "unknown (no shard)"
        lines.append(f"  {cam}: {c['codec'] or '?'} {res}")
    width = max([len("path"), *(len(r["path"]) for r in s["shard_table"])])
    lines.append(f"{'path':<{width}}  {'MB':>9}  {'episodes':>8}  {'frames':>9}")
    for r in s["shard_table"]:
        lines.append(f"{r['path']:<{width}}  {r['bytes'] / 1e6:>9.3f}  {r['episodes']:>8}  {r['frames']:>9}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    fs, root = fsspec.core.url_to_fs(args.dest, **(args.dest_options or {}))
    root = root.rstrip("/")
    try:
        manifest = Manifest.from_json_bytes(
            fs.cat_file(f"{root}/{MANIFEST_NAME}"), where=f"{args.dest}/{MANIFEST_NAME}"
        )
        first = first_episode_meta(fs, root, manifest)
    except FileNotFoundError as e:
        print(
            f"lerobot-wds inspect: {args.dest}: missing {e.filename or e} (not a finished conversion?)",
            file=sys.stderr,
        )
        return 1
    except (FormatError, tarfile.TarError) as e:
        print(f"lerobot-wds inspect: {args.dest}: {e}", file=sys.stderr)
        return 1
    summary = summarize(manifest, first)
    print(json.dumps(summary, indent=1) if args.json else render(args.dest, summary))
    return 0
