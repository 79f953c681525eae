"""Renders benchmark records: a table of runs and a table of our/their ratios for every metric.

Reads only what the runner wrote (``bench-*.json``). Runs with the same scenario (loader, mode, source label,
batch size, workers, dtype, world size) are merged: repeated runs of a rank give their median (a busy host skews
single runs), then ranks are averaged into per-node numbers — ``runs`` and ``nodes`` say how many were merged.
A ratio row pairs each of our scenarios with the baseline scenario of the same mode, batch size, workers and
dtype (the baseline always reads locally).

Usage: ``lerobot-wds bench-report DIR [--plot FILE.png]`` or ``python -m lerobot_wds.tools.bench.report DIR``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from lerobot_wds.tools.bench.records import load_records
from lerobot_wds.tools.bench.summary import METRICS, PAIR, SCENARIO, merge_scenarios

PEERS = {
    "lerobot": "LeRobotDataset",
    "lerobot-lancedb": "lerobot-lancedb",
    "lerobot-streaming": "StreamingLeRobotDataset",
    "decode-ceiling": "the decode-only ceiling",
}


def ratio_rows(scenarios: Sequence[Mapping[str, Any]], peer: str = "lerobot") -> list[dict[str, Any]]:
    """Pairs every lerobot-wds scenario with the matching scenario of ``peer``: ours / theirs per metric."""
    theirs = {tuple(s[k] for k in PAIR): s for s in scenarios if s["loader"] == peer}
    rows = []
    for ours in scenarios:
        base = theirs.get(tuple(ours[k] for k in PAIR))
        if ours["loader"] != "lerobot-wds" or base is None:
            continue
        ratios = {m: _ratio(ours["metrics"][m], base["metrics"][m]) for m in METRICS}
        rows.append({k: ours[k] for k in SCENARIO if k != "loader"} | {"ratios": ratios, "status": base["status"]})
    return rows


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _fmt_ratio(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}x"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=False))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def render(records: Sequence[Mapping[str, Any]]) -> str:
    """Returns the runs table and the ratio table as text."""
    scenarios = merge_scenarios(records)
    keys = [
        "loader",
        "batching",
        "mode",
        "source_label",
        "batch_size",
        "num_workers",
        "return_uint8",
        "nodes",
        "runs",
    ]
    head = ["loader", "batching", "mode", "source", "batch", "workers", "uint8", "nodes", "runs", "status"]
    head += [t for t, _, _ in METRICS.values()]
    rows = [
        [str(s[k]) for k in keys]
        + ["/".join(s["status"])]
        + [fmt.format(s["metrics"][m]) for m, (_, fmt, _) in METRICS.items()]
        for s in scenarios
    ]
    out = ["Runs (per node: median over runs, mean over nodes):", _table(head, rows)]
    mixed = [s for s in scenarios if len(s["readers"]) > 1]
    if mixed:
        out.append(
            f"WARNING: {len(mixed)} scenario(s) merge runs of different reader sources: "
            + "; ".join(f"{s['loader']} {s['mode']} {s['source_label']}: {s['readers']}" for s in mixed)
        )
    better = ", ".join(f"{t} {'higher' if up else 'lower'}" for t, _, up in METRICS.values())
    found = False
    for peer, name in PEERS.items():
        ratios = ratio_rows(scenarios, peer)
        if not ratios:
            continue
        found = True
        rkeys = ["batching", "mode", "source_label", "batch_size", "num_workers", "return_uint8"]
        rhead = ["batching", "mode", "ours_source", "batch", "workers", "uint8", "their_status"]
        rhead += [t for t, _, _ in METRICS.values()]
        rrows = [
            [str(r[k]) for k in rkeys] + ["/".join(r["status"])] + [_fmt_ratio(r["ratios"][m]) for m in METRICS]
            for r in ratios
        ]
        out += ["", f"Ours / {name} ({name} reads locally; better is: " + better + "):", _table(rhead, rrows)]
    if not found:
        out += ["", "No baseline records with a matching scenario: no ratios."]
    failed = [r for r in records if r.get("status", "ok") != "ok"]
    if failed:
        out += ["", "Runs without a measurement:"]
        out += [
            f"  {r['loader']} {r['mode']} w={r['num_workers']}: {r['status']}: {r.get('reason', '')}"
            for r in failed
        ]
    return "\n".join(out)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``bench-report`` subcommand."""
    p = subparsers.add_parser(
        "bench-report",
        help="print tables and ratios of benchmark records",
        description="Read the bench-*.json records in DIRECTORY (written by bench --out) and print tables of "
        "frames/s, first-batch latency and memory, and each scenario's ratio to every peer loader measured "
        "with it.",
    )
    _add_args(p)
    p.set_defaults(func=run)


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", help="directory of bench-*.json records (the bench --out)")
    p.add_argument("--plot", help="also write a PNG of frames/s vs num_workers here (needs matplotlib)")
    p.add_argument("--mixing-plot", help="also write a PNG of frames/s vs distinct episodes per batch here")


def run(args: argparse.Namespace) -> int:
    """Prints the report (and writes the plot when asked)."""
    records = load_records(args.directory)
    if not records:
        print(f"lerobot-wds bench-report: error: no bench-*.json records in {args.directory}", file=sys.stderr)
        return 2
    print(render(records))
    if args.plot:
        from lerobot_wds.tools.bench.plot import plot_workers

        print(f"plot: {plot_workers(records, args.plot)}")
    if args.mixing_plot:
        from lerobot_wds.tools.bench.plot import plot_mixing

        print(f"plot: {plot_mixing(records, args.mixing_plot)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lerobot_wds.tools.bench.report", description=__doc__.splitlines()[0]
    )
    _add_args(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    from lerobot_wds.tools.process_exit import run_main

    run_main(main)
