"""The ``lerobot-wds`` console script: one subcommand per module, each registering its own parser.

A subcommand module exposes ``register(subparsers) -> None`` that adds a parser and sets
``func=<callable(args) -> int>``. Modules are imported only when their subcommand runs, so
``lerobot-wds bench`` never imports the converter and ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

DESCRIPTION = (
    "Convert LeRobot v3 video datasets into WebDataset shards (one sample per episode) and stream them for "
    "training. Run 'lerobot-wds COMMAND --help' for a command's options."
)

# subcommand name -> module that registers it (kept sorted)
SUBCOMMANDS: dict[str, str] = {
    "bench": "lerobot_wds.tools.bench.cli",
    "bench-profile": "lerobot_wds.tools.bench.profiles.command",
    "bench-report": "lerobot_wds.tools.bench.report",
    "bench-resume": "lerobot_wds.tools.bench.resume_cost",
    "convert": "lerobot_wds.convert.cli",
    "demo": "lerobot_wds.tools.demo",
    "finalize": "lerobot_wds.convert.cli",
    "inspect": "lerobot_wds.tools.inspect_cli",
    "train": "lerobot_wds.tools.train.cli",
    "train-lerobot": "lerobot_wds.tools.train_lerobot.cli",
    "verify": "lerobot_wds.tools.verify.cli",
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Builds the top-level parser, importing only the module of the subcommand named in ``argv``."""
    parser = argparse.ArgumentParser(prog="lerobot-wds", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    modules = [SUBCOMMANDS[wanted]] if wanted in SUBCOMMANDS else sorted(set(SUBCOMMANDS.values()))
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue  # subcommand not shipped in this build
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lerobot-wds`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the subcommand's parser, with its usage, not the top-level one
        command = str(getattr(args, "command", None))
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        (subparsers.choices.get(command) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    from lerobot_wds.core.error_line import error_line
    from lerobot_wds.core.errors import LeRobotWdsError

    try:
        return int(args.func(args) or 0)
    except LeRobotWdsError as e:  # a subcommand that did not map it itself: one line, "could not run"
        print(f"lerobot-wds {args.command}: error: {error_line(e)}", file=sys.stderr)
        return 2


def entry() -> None:
    """The console script: runs :func:`main` and exits with its code, never aborted by native teardown."""
    from lerobot_wds.tools.process_exit import run_main

    run_main(main)


if __name__ == "__main__":
    entry()
