"""``lerobot-wds bench-profile``: one profile's whole comparison in one command, and its report.

A profile is one dataset (written by lerobot's own writer) in three forms: its LeRobot v3 root, our conversion
of it and its lerobot-lancedb conversion. The command runs, interleaved over ``--rounds``: the decode-only
ceiling; our reader in every preset (single, 8 steps 1 s apart, sarm) with batches built in the dataset and with
the plain ``DataLoader(ds, batch_size=16)`` idiom; LeRobotDataset, lerobot-lancedb and StreamingLeRobotDataset
with the same batch size, workers, windows and dtype (defaults: 16, 2, uint8). Records go to ``OUT``, and the
rendered tables to ``OUT/report.txt`` (all metrics) and ``OUT/report.md`` (the profile's table). It only
assembles ``lerobot-wds bench`` arguments: every default lives in the bench's configuration. Run it with a
Python that has lerobot 0.6.1 and lerobot-lancedb next to ours.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lerobot_wds.tools.bench.scenarios import MODES


def bench_argv(args: argparse.Namespace) -> list[str]:
    """The ``lerobot-wds bench`` arguments of the profile's comparison."""
    argv = [args.wds, "--out", args.out, "--mode", *MODES, "--batching", "dataset", "dataloader", "--ceiling"]
    argv += ["--lerobot-root", args.src, "--source-label", args.name, "--rounds", str(args.rounds)]
    baselines = ["lerobot", "streaming"]
    if args.lance:
        baselines.append("lancedb")
        argv += ["--lance-root", args.lance]
    argv += ["--baseline", *baselines]
    for flag in ("num_batches", "warmup", "batch_size", "guard_timeout_s", "guard_max_rss_gb"):
        value = getattr(args, flag)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    if args.num_workers is not None:
        argv += ["--num-workers", str(args.num_workers)]
    return argv


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``bench-profile`` subcommand."""
    p = subparsers.add_parser(
        "bench-profile",
        help="run one profile's whole comparison and write its report",
        description="Run one dataset profile's whole comparison (lerobot-wds against LeRobotDataset, "
        "lerobot-lancedb and the decode-only ceiling, interleaved rounds) and write its records and report.",
    )
    p.add_argument("name", help="profile label in records and reports, e.g. p480")
    p.add_argument("--wds", required=True, help="our conversion of the dataset (local)")
    p.add_argument("--src", required=True, help="the dataset's LeRobot v3 root (local)")
    p.add_argument("--lance", help="its lerobot-lance-convert output (omit to skip lerobot-lancedb)")
    p.add_argument("--out", required=True, help="directory receiving the records and report.txt")
    p.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians over them are reported)")
    # passed on to every bench run; left out, the bench's own defaults apply
    p.add_argument("--num-batches", type=int, help="batches measured after warm-up, per run (bench default 50)")
    p.add_argument("--warmup", type=int, help="batches consumed before measuring (bench default 5)")
    p.add_argument(
        "--batch-size", help="samples per batch, every loader; comma list runs each, e.g. 16,64,256 (default 16)"
    )
    p.add_argument("--num-workers", type=int, help="DataLoader workers, every loader (bench default 2)")
    p.add_argument("--guard-timeout-s", type=float, help="streaming baseline: wall-clock bound (bench's)")
    p.add_argument("--guard-max-rss-gb", type=float, help="streaming baseline: bound on its summed RSS (bench's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Runs the comparison through ``lerobot-wds bench``, then renders every record in OUT to OUT/report.txt."""
    from lerobot_wds.tools.bench import cli as bench_cli
    from lerobot_wds.tools.bench.profiles.table import markdown_table
    from lerobot_wds.tools.bench.records import load_records
    from lerobot_wds.tools.bench.report import render

    parser = argparse.ArgumentParser(prog="lerobot-wds bench")
    sub = parser.add_subparsers()
    bench_cli.register(sub)
    code = int(bench_cli.run(parser.parse_args(["bench", *bench_argv(args)])) or 0)
    records = load_records(args.out)
    report = render(records)
    (Path(args.out) / "report.txt").write_text(report + "\n")
    (Path(args.out) / "report.md").write_text(markdown_table(records) + "\n")
    print(report)
    return code
