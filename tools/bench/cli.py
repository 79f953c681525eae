"""``lerobot-wds bench``: runs benchmark scenarios (modes x worker counts, ours and optionally the baseline).

Every scenario is one :class:`BenchConfig`; the CLI only parses, builds configs (defaults live in the
dataclass), runs them one after another and writes one record per run into ``--out``. Render the records with
``lerobot-wds bench-report DIR``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lerobot_wds.tools.bench.scenarios import MODES, BenchConfig


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``bench`` subcommand."""
    p = subparsers.add_parser(
        "bench",
        help="measure loader throughput (ours vs LeRobotDataset)",
        description="Run benchmark scenarios (modes x worker counts, ours and optionally the baselines) on a "
        "converted root and write one JSON record per run into --out; 'lerobot-wds bench-report DIR' prints them.",
    )
    p.add_argument("source", help="converted root (local dir or fsspec URL)")
    p.add_argument(
        "--mode",
        nargs="+",
        choices=sorted(MODES),
        default=["single"],
        help="window mode(s); each is a separate run",
    )
    p.add_argument(
        "--batch-size",
        type=_int_list,
        help="samples per batch, every loader; comma list runs each, e.g. 16,64,256 (default 16)",
    )
    p.add_argument(
        "--num-workers", type=_int_list, help="DataLoader workers; comma list runs each, e.g. 0,1,2 (default 2)"
    )
    p.add_argument("--num-batches", type=int, help="batches measured after warm-up (default 50)")
    p.add_argument("--warmup", type=int, help="batches consumed before measuring (default 5)")
    p.add_argument(
        "--return-uint8",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="images as uint8 [0,255] instead of float32 [0,1] (default: uint8)",
    )
    p.add_argument("--seed", type=int, help="shuffling seed of every loader (default 0)")
    p.add_argument(
        "--batching",
        nargs="+",
        choices=["dataset", "dataloader"],
        help="ours: build batches in the pipeline (dataset, recommended) or with DataLoader's collate (the plain "
        "DataLoader(ds, batch_size=16) idiom); several run each",
    )
    p.add_argument("--active-episodes", type=int, help="ours: the pool's open-episode limit (mixing vs memory)")
    p.add_argument(
        "--cache-dir",
        help="ours: node-local cache directory (with --cache-limit); the run reads and records 2 whole epochs",
    )
    p.add_argument("--cache-limit", type=int, help="ours: the node-local cache's bound in bytes")
    p.add_argument("--device", help="where the dummy consumer moves batches: cpu or cuda (default cpu)")
    p.add_argument("--source-label", help="label in records and reports (default: local or http-<lat>ms-<bw>MBs)")
    p.add_argument("--out", required=True, help="directory receiving the JSON records and records.csv")
    p.add_argument(
        "--baseline",
        nargs="+",
        choices=["lerobot", "lancedb", "streaming"],
        default=[],
        help="also run these loaders with the same settings: LeRobotDataset (needs --lerobot-root), "
        "lerobot-lancedb's LanceDBDataset (needs --lance-root), StreamingLeRobotDataset (needs --lerobot-root; "
        "runs in a child process bounded by --guard-timeout-s and --guard-max-rss-gb)",
    )
    p.add_argument("--guard-timeout-s", type=float, default=600.0, help="streaming baseline: wall-clock bound")
    p.add_argument(
        "--guard-max-rss-gb",
        type=float,
        default=8.0,
        help="streaming baseline: bound on its processes' summed RSS",
    )
    p.add_argument(
        "--ceiling",
        action="store_true",
        help="also measure the decode-only ceiling of SOURCE (a local conversion): every frame decoded "
        "sequentially by torchcodec, RGB uint8, one process per core",
    )
    p.add_argument("--rounds", type=int, default=1, help="run every scenario this many times, interleaved")
    p.add_argument("--baseline-only", action="store_true", help="run only the baselines")
    p.add_argument(
        "--lerobot-root",
        help="local LeRobot v3 root of the same dataset (for --baseline lerobot / streaming; its meta/episodes "
        "also give the mixing reference of every loader)",
    )
    p.add_argument("--lance-root", help="lerobot-lance-convert output of the dataset (for --baseline lancedb)")
    p.add_argument("--repo-id", help="repo id passed to LeRobotDataset")
    p.add_argument(
        "--emulate-latency-ms", type=float, help="serve SOURCE on loopback with this first-byte latency"
    )
    p.add_argument("--emulate-bandwidth-mb-s", type=float, help="... and this per-response bandwidth (MB/s)")
    p.set_defaults(func=run)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "num_batches",
        "warmup",
        "return_uint8",
        "seed",
        "device",
        "repo_id",
        "active_episodes",
    )
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def build_configs(args: argparse.Namespace) -> list[BenchConfig]:
    """Returns the scenarios to run, ours then the baseline for each (mode, workers)."""
    if args.baseline_only and not args.baseline:
        raise ValueError("--baseline-only needs --baseline lerobot and/or lancedb")
    if "lerobot" in args.baseline and not args.lerobot_root:
        raise ValueError("--baseline lerobot needs --lerobot-root")
    if "streaming" in args.baseline and not args.lerobot_root:
        raise ValueError("--baseline streaming needs --lerobot-root")
    if "lancedb" in args.baseline and not args.lance_root:
        raise ValueError("--baseline lancedb needs --lance-root")
    if args.rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {args.rounds}")
    emulated = args.emulate_latency_ms is not None or args.emulate_bandwidth_mb_s is not None
    label = args.source_label
    if label is None:
        label = (
            f"http-{args.emulate_latency_ms or 0:g}ms-{args.emulate_bandwidth_mb_s or 0:g}MBs"
            if emulated
            else "local"
        )
    workers = args.num_workers or [BenchConfig.__dataclass_fields__["num_workers"].default]
    batch_sizes = args.batch_size or [BenchConfig.__dataclass_fields__["batch_size"].default]
    configs = []
    for mode, w, b in ((m, w, b) for m in args.mode for b in batch_sizes for w in workers):
        common = _common(args) | {"mode": mode, "num_workers": w, "batch_size": b}
        common["meta_root"] = args.lerobot_root
        for batching in [] if args.baseline_only else args.batching or [None]:
            ours = {
                "loader": "lerobot-wds",
                "source_label": label,
                "emulate_latency_ms": args.emulate_latency_ms,
                "emulate_bandwidth_mb_s": args.emulate_bandwidth_mb_s,
            }
            if batching is not None:
                ours["batching"] = batching
            cache_dir, cache_limit = getattr(args, "cache_dir", None), getattr(args, "cache_limit", None)
            if cache_dir is not None or cache_limit is not None:  # a Namespace built without them: no cache
                ours |= {"cache_dir": cache_dir, "cache_limit": cache_limit}
            configs.append(BenchConfig(args.source, **ours, **common))
        # the peers read local roots only, so their runs are always local
        if "lerobot" in args.baseline:
            configs.append(BenchConfig(args.lerobot_root, loader="lerobot", source_label="local", **common))
        if "lancedb" in args.baseline:
            configs.append(BenchConfig(args.lance_root, loader="lerobot-lancedb", source_label="local", **common))
        if "streaming" in args.baseline:
            configs.append(
                BenchConfig(args.lerobot_root, loader="lerobot-streaming", source_label="local", **common)
            )
    return configs


def summary_line(record: dict[str, Any]) -> str:
    """One human line per run (printed after the run, never inside the timing loop)."""
    if record.get("status", "ok") != "ok":
        where = f"{record['loader']:<11} {record['mode']:<10} w={record['num_workers']}"
        return f"{where} {record['status']}: {record['reason']}"
    if record["loader"] == "decode-ceiling":
        return f"decode-ceiling processes={record['processes']} frames/s={record['frames_per_s_node']:.1f}"
    cache = record.get("video_decoder_cache") or {}
    mix = record.get("mixing") or {}
    return (
        f"{record['loader']:<11} {record['mode']:<10} {record['source_label']:<18} w={record['num_workers']} "
        f"b={record['batch_size']} frames/s={record['frames_per_s_node']:.1f} "
        f"samples/s={record['samples_per_s']:.1f} "
        f"first={record['first_batch_latency_s']:.2f}s p50={record['p50_sample_latency_ms']:.2f}ms "
        f"rss={record['peak_rss_mb']:.0f}MB dec_hit={cache.get('hit_rate', float('nan')):.2f} "
        f"eps/batch={mix.get('distinct_episodes_per_batch', float('nan')):.1f} "
        f"min={mix.get('min_distinct_episodes_per_batch', float('nan')):.0f}"
    )


def check_root(root: str) -> None:
    """Opens a converted root's manifest, raising the reader's one error for anything else given as a root."""
    from lerobot_wds.reader.fetching.fetch import StreamConfig
    from lerobot_wds.reader.root import open_root

    open_root(root, StreamConfig())


def run(args: argparse.Namespace) -> int:
    """Runs every scenario and writes its record."""
    from lerobot_wds.tools.bench.peers.guard import run_guarded
    from lerobot_wds.tools.bench.profiles.ceiling import ceiling_record
    from lerobot_wds.tools.bench.records import write_record
    from lerobot_wds.tools.bench.runner import run_bench

    try:
        configs = build_configs(args)
    except ValueError as e:
        print(f"lerobot-wds bench: error: {e}", file=sys.stderr)
        return 2
    for root in sorted({c.source for c in configs if c.loader == "lerobot-wds"}):
        check_root(root)  # a wrong root is one line before any run starts (LeRobotWdsError: exit 2)
    runs = args.rounds * (len(configs) + bool(args.ceiling))
    done = 0
    for round_ in range(1, args.rounds + 1):
        rounds = f", round {round_}/{args.rounds}" if args.rounds > 1 else ""
        if args.ceiling:
            done += 1
            print(f"running {done}/{runs}{rounds}: the decode-only ceiling", file=sys.stderr, flush=True)
            record = ceiling_record(configs[0], args.source)
            print(summary_line(record), flush=True)
            print(f"  -> {write_record(args.out, record)}", file=sys.stderr)
        for config in configs:
            done += 1
            print(f"running {done}/{runs}{rounds}: {config.describe()}", file=sys.stderr, flush=True)
            if config.loader == "lerobot-streaming":
                max_rss = int(args.guard_max_rss_gb * 2**30)
                record = run_guarded(config, timeout_s=args.guard_timeout_s, max_rss_bytes=max_rss)
            else:
                record = run_bench(config)
            path = write_record(args.out, record)
            print(summary_line(record), flush=True)
            print(f"  -> {path}", file=sys.stderr)
    return 0
