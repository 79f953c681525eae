"""``lerobot-wds convert`` and ``lerobot-wds finalize``: parse arguments into a ConvertConfig and run.

The parsers keep no defaults of their own: an option left out is not passed, so ConvertConfig's default
applies. ``--part auto`` reads the SLURM array variables here, at the edge.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any

from lerobot_wds.convert.cli_args import json_object
from lerobot_wds.convert.config import ConvertConfig, parse_episodes, parse_part, parse_size
from lerobot_wds.core.error_line import error_line
from lerobot_wds.core.progress import NO_PROGRESS_HELP


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wraps a parser so argparse shows its message (argparse hides a plain ValueError's text)."""

    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e

    wrapped.__name__ = parse.__name__
    return wrapped


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``convert`` and ``finalize`` subcommands."""
    S = argparse.SUPPRESS  # noqa: N806 - an option left out must not reach ConvertConfig
    p = subparsers.add_parser(
        "convert",
        help="convert a LeRobot v3 dataset to episode-per-sample WebDataset shards",
        description="Convert SRC (LeRobot v3; local path or fsspec URL such as hf://datasets/<repo>@<rev>, "
        "hf://buckets/<owner>/<bucket>/<prefix>, s3://..., https://...) into DEST (local path or fsspec URL): "
        "DEST/meta/ (copy of the source meta), DEST/shards/*.tar and DEST/manifest.json (written last).",
    )
    p.add_argument("source", help="LeRobot v3 dataset root (path or fsspec URL)")
    p.add_argument("dest", help="output root (path or fsspec URL)")
    p.add_argument(
        "--shard-size",
        dest="target_shard_bytes",
        type=_arg(parse_size),
        default=S,
        help="target shard size, e.g. 512MB or 1GiB (estimated; whole episodes per shard)",
    )
    p.add_argument("--episodes", type=_arg(parse_episodes), default=S, help="subset, e.g. 0,3,10-19")
    p.add_argument(
        "--order",
        choices=["source", "shuffle"],
        default=S,
        help="episode order across shards: shuffle (seeded, the default) or source",
    )
    p.add_argument("--seed", type=int, default=S, help="seed of --order shuffle (default 0)")
    p.add_argument("--workers", type=int, default=S, help="threads reading rows and remuxing videos")
    p.add_argument(
        "--part",
        default=S,
        help="I/N: convert only shards with index %% N == I; 'auto' reads SLURM_ARRAY_TASK_ID/COUNT. "
        "With N > 1, run 'lerobot-wds finalize DEST' after all parts",
    )
    p.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default=S,
        help="on a bad episode: stop, or skip it and record it in the manifest",
    )
    p.add_argument("--staging-dir", default=S, help="local directory for shards being written/uploaded")
    p.add_argument("--max-staged-shards", type=int, default=S, help="shards allowed on local disk at once")
    p.add_argument("--upload-attempts", type=int, default=S, help="attempts per upload (transient errors)")
    p.add_argument(
        "--retry-backoff",
        dest="retry_backoff_s",
        type=float,
        default=S,
        help="bound of the first retry delay in seconds (random below it; doubles each attempt)",
    )
    p.add_argument(
        "--resume-check",
        choices=["size", "sha256"],
        default=S,
        help="how shards already at DEST are verified before being skipped",
    )
    p.add_argument("--source-options", type=json_object, default=S, help="fsspec storage options (JSON)")
    p.add_argument("--dest-options", type=json_object, default=S, help="fsspec storage options (JSON)")
    p.add_argument(
        "--reencode",
        choices=["av1", "h264"],
        default=S,
        help="encode each episode's frames again with a short GOP (av1: lerobot's libsvtav1 settings; h264 for "
        "GPUs without an AV1 decoder) instead of copying them; frames then differ from the source by the encode",
    )
    p.add_argument("--reencode-gop", type=int, default=S, help="frames between keyframes of --reencode (2)")
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=S,
        help=NO_PROGRESS_HELP,
    )
    p.add_argument("--stats-json", default=None, help="write the run summary (incl. peak RSS/staging) here")
    p.set_defaults(func=run_convert)
    show_defaults(p)

    f = subparsers.add_parser(
        "finalize",
        help="merge the per-part manifests of 'convert --part I/N' runs into DEST/manifest.json",
        description="Check that every part finished and every shard is present with its recorded size, "
        "then write DEST/manifest.json (byte-identical to a single-run conversion).",
    )
    f.add_argument("dest", help="output root (path or fsspec URL)")
    f.add_argument("--parts", type=int, default=None, help="which split to finalize when several are present")
    f.add_argument("--dest-options", type=json_object, default=None, help="fsspec storage options (JSON)")
    f.set_defaults(func=run_finalize)


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Appends ConvertConfig's default to the help of every option that sets one of its fields (the CLI keeps
    no defaults of its own, so ``--help`` shows the config's)."""
    values = {}
    for f in fields(ConvertConfig):
        if f.default is not MISSING:
            values[f.name] = f.default
        elif f.default_factory is not MISSING:
            values[f.name] = f.default_factory()
    values["part"] = "0/1"
    for action in parser._actions:
        if action.dest not in values or not action.help or "default" in action.help:
            continue
        value = values[action.dest]
        if action.dest == "target_shard_bytes":
            value = f"{value / 2**20:g}MiB"
        elif action.dest == "progress":
            continue  # a switch that turns the default off
        elif action.dest == "workers":
            value = "the CPU count, at most 8"
        elif action.dest == "staging_dir":
            value = "the system temp dir"
        elif value is None or value == {}:
            value = "none"
        action.help += f" (default: {value})"


def config_from_args(args: argparse.Namespace) -> ConvertConfig:
    """Builds the ConvertConfig from parsed ``convert`` arguments (only the options that were given)."""
    given = {k: v for k, v in vars(args).items() if k not in ("func", "command", "stats_json", "part")}
    if "part" in vars(args):
        given["part_index"], given["part_count"] = parse_part(args.part)
    return ConvertConfig(**given)


def _domain_errors() -> tuple[type[BaseException], ...]:
    from lerobot_wds.core.errors import LeRobotWdsError

    return (LeRobotWdsError,)  # every domain error: bad input or options, unreachable source, failed upload


# ConvertConfig's field names, as the CLI flags a user typed
FLAGS = {
    "target_shard_bytes": "--shard-size",
    "part_index": "--part",
    "part_count": "--part",
    "max_staged_shards": "--max-staged-shards",
    "upload_attempts": "--upload-attempts",
    "retry_backoff_s": "--retry-backoff",
    "workers": "--workers",
    "episodes": "--episodes",
}


def _message(e: BaseException) -> str:
    """The error's line, an option named by its CLI flag (``--shard-size``, not ``target_shard_bytes``)."""
    from lerobot_wds.convert.errors import ConfigError

    text = error_line(e)
    if isinstance(e, ConfigError):
        for field, flag in FLAGS.items():
            if text.startswith(f"{field} "):
                return flag + text[len(field) :]
            text = text.replace(f"(--{field.replace('_', '-')}:", f"({flag}:")
    return text


def _exit_code(e: BaseException) -> int:
    """2 when the command could not run (bad options, unknown episodes, no such or unreachable source, a DEST
    it must not write into or holding another conversion); 1 for problems found in the data and for writes
    that failed once the run had started (a full staging or destination disk, DEST gone past the retries:
    rerun to resume)."""
    from lerobot_wds.convert.errors import ConfigError, ConvertError, PlanError, SinkError, StagingError
    from lerobot_wds.core.errors import InputError, RetryError

    if isinstance(e, (SinkError, StagingError)):
        return 1
    could_not_run = (InputError, ConfigError, PlanError, ConvertError, RetryError)
    return 2 if isinstance(e, could_not_run) else 1


def run_convert(args: argparse.Namespace) -> int:
    """Runs ``convert``; a domain error prints one line and exits 2 when the command could not run (bad
    options, no such or unreachable source, a DEST it must not write into), 1 for problems in the data.

    A full staging disk is such an error. SIGTERM/SIGINT stop the run cleanly (staging removed, no manifest)
    and print one line; the exit code is 128 + the signal (143 for SIGTERM, 130 for SIGINT).
    """
    from lerobot_wds.convert.interrupt import Interrupted, stop_on_signals

    try:
        with stop_on_signals():
            return _convert(args)
    except Interrupted as e:
        print(f"lerobot-wds convert: {e}", file=sys.stderr)
        return e.exit_code
    except _domain_errors() as e:
        print(f"lerobot-wds convert: error: {_message(e)}", file=sys.stderr)
        return _exit_code(e)


def _convert(args: argparse.Namespace) -> int:
    from lerobot_wds.convert.cli_args import check_dest
    from lerobot_wds.convert.pipeline import convert
    from lerobot_wds.core.peak_rss import PeakRss
    from lerobot_wds.core.redact import redact_url

    config = config_from_args(args)
    check_dest(config.source, config.dest)
    summary = convert(config, rss=PeakRss(reset=True))  # the command owns its process
    print(summary.line(), file=sys.stderr)
    if args.stats_json:
        with open(args.stats_json, "w") as fh:
            json.dump(summary.to_dict(), fh, indent=1)
    if not summary.manifest_written:
        print(
            f"part {summary.part} done; run 'lerobot-wds finalize {redact_url(args.dest)}' after all parts",
            file=sys.stderr,
        )
    return 0


def run_finalize(args: argparse.Namespace) -> int:
    """Runs ``finalize``; missing or inconsistent parts/shards print one line and exit 1."""
    from lerobot_wds.convert.manifest_io import finalize
    from lerobot_wds.convert.sink import open_sink

    try:
        done = finalize(open_sink(args.dest, args.dest_options), part_count=args.parts)
    except _domain_errors() as e:
        print(f"lerobot-wds finalize: error: {_message(e)}", file=sys.stderr)
        return _exit_code(e)
    print(
        f"manifest.json written: {done.totals.shards} shards, {done.totals.episodes} episodes, "
        f"{done.totals.frames} frames, {done.totals.bytes / 1e6:.1f} MB, {done.skipped} skipped",
        file=sys.stderr,
    )
    return 0
