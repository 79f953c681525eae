"""``lerobot-wds verify``: parse arguments into a VerifyConfig, run it, print the report, exit 0 only if clean.

Exit codes: 0 every check passed; 1 problems were found (each printed with its shard, episode, camera and
member); 2 the command could not run (bad options, unreadable source).
"""

from __future__ import annotations

import argparse
import sys

from lerobot_wds.convert.cli_args import json_object
from lerobot_wds.convert.source import SourceError
from lerobot_wds.core.errors import InputError
from lerobot_wds.core.progress import NO_PROGRESS_HELP
from lerobot_wds.tools.verify.run import VerifyConfig, verify


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``verify`` subcommand."""
    S = argparse.SUPPRESS  # noqa: N806 - an option left out must not reach VerifyConfig
    p = subparsers.add_parser(
        "verify",
        help="check a converted root: sha256/sizes, tar structure, episodes, frame counts, rows, decode parity",
        description="Check DEST (local path or fsspec URL) against its manifest.json: every shard's size and "
        "sha256, tar members (<key>.json, <key>.parquet, one <key>.<camera>.mp4 per camera; no extras or "
        "duplicates), every episode exactly once and in its listed shard, per-shard frame counts, episode JSON "
        "vs rows vs mini-MP4 frame counts. With --source: rows (schema included) and provenance equal the "
        "source's. With --decode K: K frames per episode and camera decode bit-identically to the source. "
        "Exit 0 only when everything holds.",
    )
    p.add_argument("dest", help="converted root (path or fsspec URL)")
    p.add_argument("--source", default=S, help="the LeRobot v3 dataset DEST was converted from")
    p.add_argument(
        "--decode",
        dest="decode_frames",
        type=int,
        default=S,
        metavar="K",
        help="decode K frames per episode and camera (first and last included) and compare them "
        "bit for bit with the source (needs --source)",
    )
    p.add_argument(
        "--min-psnr",
        dest="min_psnr_db",
        type=float,
        default=S,
        metavar="DB",
        help="with --decode on a root converted with --reencode: least PSNR of each frame against the source "
        "(default 40)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--source-options", type=json_object, default=S, help="fsspec storage options (JSON)")
    p.add_argument("--dest-options", type=json_object, default=S, help="fsspec storage options (JSON)")
    p.add_argument(
        "--retries",
        type=int,
        default=S,
        metavar="N",
        help="re-read a shard from its start up to N times after a transient error (5xx, reset or "
        "cut connection; default 5); missing shards and corrupt data are never retried",
    )
    p.add_argument(
        "--retry-backoff",
        dest="retry_backoff_s",
        type=float,
        default=S,
        metavar="S",
        help="first retry delay in seconds (doubles each retry; default 0.5)",
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=S,
        help=NO_PROGRESS_HELP,
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "json")}
    try:
        cfg = VerifyConfig(**given)
        report = verify(cfg)
    except (ValueError, SourceError, InputError) as e:  # SourceError is a ValueError; named for the reader
        print(f"lerobot-wds verify: error: {e}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.to_text())
    return 0 if report.ok else 1
