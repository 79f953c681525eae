"""Runs one benchmark: builds the loader, consumes batches like a training loop and returns a record (a dict).

The dummy consumer pulls ``warmup + num_batches`` batches, checks each one (camera keys, shapes, dtype) and moves
it to the device. Throughput counts the ``num_batches`` batches after warm-up; the first batch latency is
measured from ``iter(loader)``. Our loader's worker counters (decoder cache, decoded frames) are summed by the
dataset itself and read with ``dataset.stats()`` in this process after the measured batches; the peers'
travel with each batch: their collate function runs inside the worker, asks the worker's dataset copy for its
stats and adds them under :data:`STATS_KEY`, which the consumer pops before anything else sees the batch.

Metric definitions:
    frames_per_s_node: camera images delivered per second (every window frame of every camera counts).
    samples_per_s: samples per second.
    first_batch_latency_s: from ``iter(loader)`` to the first batch in hand (worker start-up included).
    setup_s: building the dataset and DataLoader (manifest read / LeRobotDataset metadata load; modules are
        imported before this is timed), before iter().
    pXX_sample_latency_ms: percentiles over measured batches of the time the consumer waited in ``next()``
        divided by the batch size (the amortised wait per sample a training step sees).
    wallclock_s: from ``iter(loader)`` through the last batch and the workers' shutdown (warm-up included).
    bytes_read: bytes the loopback server sent when emulating a bucket, else the processes' ``read_chars``.

With ``emulate_*`` the loopback server runs on threads of this (the consumer's) process, so its CPU time and
memory are part of the measurement, as a client-side proxy's would be.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import platform
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from lerobot_wds.core.progress import Progress
from lerobot_wds.testing.http_server import LoopbackHTTPServer, ServeConfig
from lerobot_wds.tools.bench.loaders import STATS_KEY, LoaderBundle
from lerobot_wds.tools.bench.mixing import iid_reference, mixing, relative_to_iid
from lerobot_wds.tools.bench.monitor import DiskSampler, ProcessMonitor
from lerobot_wds.tools.bench.profiles.episodes import read_episode_table
from lerobot_wds.tools.bench.records import record_header
from lerobot_wds.tools.bench.scenarios import BenchConfig
from lerobot_wds.tools.errors import BenchError

CACHE_FIELDS = ("hits", "misses", "evictions", "size")


def build_ours(config: BenchConfig, source: str) -> LoaderBundle:
    """Builds our ``LeRobotWdsDataset`` on ``source`` and its DataLoader."""
    from lerobot_wds.reader.dataset import LeRobotWdsDataset

    # windows are passed explicitly (not as a preset) so both loaders get identical delta_timestamps
    probe_ds = LeRobotWdsDataset(source, shuffle=False)
    deltas = config.window.delta_timestamps(probe_ds.camera_keys, probe_ds.fps)
    batched = config.batching == "dataset"
    options: dict[str, Any] = {}
    if config.active_episodes is not None:
        options["active_episodes"] = config.active_episodes
    if config.cache_dir is not None:
        options |= {"cache_dir": config.cache_dir, "cache_limit": config.cache_limit}
    dataset = LeRobotWdsDataset(
        source,
        delta_timestamps=deltas,
        seed=config.seed,
        return_uint8=config.return_uint8,
        batch_size=config.batch_size if batched else None,
        mix_batch=None if batched else config.batch_size,  # the DataLoader's batch, told to the per-sample path
        **options,
    )
    loader = DataLoader(
        dataset,
        batch_size=None if batched else config.batch_size,
        num_workers=config.num_workers,
        persistent_workers=False,
    )
    per_epoch = dataset.samples_per_rank(config.num_workers)
    return LoaderBundle(
        loader,
        dataset.camera_keys,
        dataset.fps,
        dataset.manifest.total_frames,
        {"samples_per_epoch": per_epoch, "shards": len(dataset.manifest.shards)},
        main_stats=dataset.stats,  # the workers' counters, summed by the dataset in this process (board.py)
        set_epoch=dataset.set_epoch,
    )


def count_batch(batch: Mapping[str, Any], bundle: LoaderBundle, config: BenchConfig) -> tuple[int, int]:
    """Checks a batch's camera tensors and returns (samples, camera frames) in it."""
    window = config.window.window_length()
    want_dtype = torch.uint8 if config.return_uint8 else torch.float32
    samples = frames = 0
    for cam in bundle.camera_keys:
        if cam not in batch:
            raise BenchError(f"{config.loader} batch has no camera {cam!r}; keys: {sorted(batch)}")
        x = batch[cam]
        want_ndim = 4 if window == 1 else 5
        if x.ndim != want_ndim or x.dtype != want_dtype or (window > 1 and x.shape[1] != window):
            raise BenchError(
                f"{config.loader} camera {cam!r}: expected a {want_ndim}-d {want_dtype} batch with window "
                f"{window}, "
                f"got shape {tuple(x.shape)} {x.dtype}"
            )
        samples = x.shape[0]
        frames += x.shape[0] * window
    return samples, frames


def _to_device(batch: Mapping[str, Any], device: torch.device) -> list[torch.Tensor]:
    return [v.to(device, non_blocking=True) for v in batch.values() if isinstance(v, torch.Tensor)]


def aggregate_worker_stats(
    per_worker: Mapping[int, Mapping[str, Any]], section: str, workers: int | None = None
) -> dict[str, Any] | None:
    """Sums one cache section (e.g. "decoders") over workers; hit_rate from the sums; None when absent.

    ``workers``: how many workers the counts cover when they come already summed (one entry), else one each.
    """
    found = [s[section] for s in per_worker.values() if isinstance(s.get(section), Mapping)]
    if not found:
        return None
    out: dict[str, Any] = {f: sum(int(s.get(f, 0)) for s in found) for f in CACHE_FIELDS}
    lookups = out["hits"] + out["misses"]
    out["hit_rate"] = out["hits"] / lookups if lookups else 0.0
    out["workers"] = workers if workers is not None else len(found)
    return out


def consume(bundle: LoaderBundle, config: BenchConfig, *, whole_epoch: bool = False) -> dict[str, Any]:
    """Pulls the batches and returns the timing and counting part of the record.

    ``whole_epoch``: every batch of the epoch, measured after the warm-up ones (``num_batches`` is ignored).
    """
    device = torch.device(config.device)
    waits: list[float] = []
    episodes: list[list[int]] = []  # episode_index of every measured sample, batch by batch
    samples = frames = 0
    per_worker: dict[int, dict[str, Any]] = {}
    total = config.warmup + config.num_batches
    progress = Progress(
        None if whole_epoch else total, f"bench {config.loader} {config.mode} w={config.num_workers}", "batches"
    )
    t_start = time.perf_counter()
    it = iter(bundle.loader)
    first_batch_s = None
    t_measure = t_start
    for i in itertools.count() if whole_epoch else range(total):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            if whole_epoch and i > config.warmup:
                break
            raise BenchError(
                f"{config.loader} on {config.source}: the loader ended after {i} of {total} batches "
                f"(batch size {config.batch_size}); lower --num-batches/--warmup or use a bigger dataset"
            ) from None
        t1 = time.perf_counter()
        if first_batch_s is None:
            first_batch_s = t1 - t_start
        probe = batch.pop(STATS_KEY, None)
        if probe is not None:
            per_worker[probe["worker"]] = probe["stats"]
        n, f = count_batch(batch, bundle, config)
        _to_device(batch, device)
        progress.update(1)  # a counter; a line every few seconds off a terminal (core.progress)
        if i >= config.warmup:
            episodes.append([int(e) for e in batch["episode_index"].tolist()])
            waits.append(t1 - t0)
            samples += n
            frames += f
        if i == config.warmup - 1:
            t_measure = time.perf_counter()
    t_end = time.perf_counter()
    progress.close()
    del it  # shuts the workers down: each publishes its final counts as its iteration closes
    workers = None
    if bundle.main_stats is not None:
        per_worker, workers = {-1: dict(bundle.main_stats())}, max(1, config.num_workers)
    measure_s = t_end - t_measure
    per_sample_ms = np.asarray(waits) * 1000.0 / config.batch_size
    return {
        "batches": len(waits),
        "samples": samples,
        "frames": frames,
        "measure_s": measure_s,
        "wallclock_s": time.perf_counter() - t_start,
        "frames_per_s_node": frames / measure_s,
        "samples_per_s": samples / measure_s,
        "first_batch_latency_s": first_batch_s,
        **{f"p{q}_sample_latency_ms": float(np.percentile(per_sample_ms, q)) for q in (50, 95, 99)},
        "video_decoder_cache": aggregate_worker_stats(per_worker, "decoders", workers),
        "frame_cache": aggregate_worker_stats(per_worker, "frames", workers),
        "decoded_frames": sum(int(s.get("decoded_frames", 0)) for s in per_worker.values()),
        "episodes_per_batch": episodes,
    }


def cached_epoch(bundle: LoaderBundle, config: BenchConfig, epoch: int, server: Any) -> dict[str, Any]:
    """One whole epoch through the node-local cache: its timing, mixing, remote and cached bytes and hits."""
    if bundle.set_epoch is None or bundle.main_stats is None:
        raise BenchError(f"{config.loader}: a cached run needs our dataset (set_epoch, stats)")
    bundle.set_epoch(epoch)
    if server is not None:
        server.reset_stats()
    with DiskSampler(Path(config.cache_dir or ".")) as disk:
        out = consume(bundle, config, whole_epoch=True)
    stats = bundle.main_stats()
    return out | {
        "epoch": epoch,
        "remote_bytes": int(stats.get("remote_bytes", 0)),
        "cache": dict(stats.get("cache", {})),
        "cache_disk_peak_bytes": disk.peak,
        "http_bytes_sent": server.stats().bytes_sent if server is not None else None,
        "distinct_per_batch": mixing(out["episodes_per_batch"]).get("distinct_episodes_per_batch"),
    }


def mixing_report(episodes: list[list[int]], config: BenchConfig) -> dict[str, Any]:
    """The run's mixing, the same metrics under i.i.d. sampling of the same dataset, and their ratios.

    Without an episode table (a root without ``meta/episodes``) only the episode-index metrics are reported.
    """
    try:
        table = read_episode_table(config.meta_root or config.source)
    except BenchError as e:
        return {"mixing": mixing(episodes), "mixing_reference_error": str(e)}
    measured = mixing(episodes, table.tasks)
    iid = iid_reference(table.lengths, table.tasks, config.batch_size, seed=config.seed)
    return {"mixing": measured, "mixing_iid": iid, "mixing_vs_iid": relative_to_iid(measured, iid)}


def _versions() -> dict[str, str]:
    import torchcodec

    import lerobot_wds.core
    import lerobot_wds.reader

    # the reader's exact source (committed or not, core included) identifies which code produced the numbers
    digest = hashlib.sha256()
    for folder in (Path(lerobot_wds.core.__file__).parent, Path(lerobot_wds.reader.__file__).parent):
        for path in sorted(folder.rglob("*.py")):
            digest.update(f"{folder.name}/{path.relative_to(folder)}".encode() + b"\0" + path.read_bytes())
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchcodec": torchcodec.__version__,
        "reader_sha256": digest.hexdigest()[:16],
    }


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Runs one benchmark and returns its record."""
    load_start = os.getloadavg()[0]  # other processes on the host skew every number: record how busy it was
    with contextlib.ExitStack() as stack:
        server = None
        source = config.source
        if config.emulated:
            cfg = ServeConfig(
                latency_ms=config.emulate_latency_ms or 0.0, bandwidth_mb_s=config.emulate_bandwidth_mb_s
            )
            server = stack.enter_context(LoopbackHTTPServer(config.source, cfg))
            source = server.url
        build: Callable[[BenchConfig, str], LoaderBundle]
        if config.loader == "lerobot-wds":
            build = build_ours
            import lerobot_wds.reader.dataset  # noqa: F401 - imports are not setup time: import before timing
        elif config.loader == "lerobot":
            from lerobot_wds.tools.bench.baseline import build_lerobot, import_lerobot

            import_lerobot()
            build = lambda cfg, _source: build_lerobot(cfg)  # noqa: E731
        elif config.loader == "lerobot-streaming":
            from lerobot_wds.tools.bench.peers.streaming import build_streaming, import_streaming

            import_streaming()
            build = lambda cfg, _source: build_streaming(cfg)  # noqa: E731
        else:
            from lerobot_wds.tools.bench.lance import build_lance, import_lance

            import_lance()
            build = lambda cfg, _source: build_lance(cfg)  # noqa: E731
        t_setup = time.perf_counter()
        bundle = build(config, source)
        setup_s = time.perf_counter() - t_setup
        with ProcessMonitor() as monitor:
            if config.cache_dir is None:
                result = consume(bundle, config)
                epochs = None
            else:
                epochs = [cached_epoch(bundle, config, e, server) for e in (0, 1)]
                result = dict(epochs[0])  # the cold epoch's numbers at the top, as without a cache
        episodes = result.pop("episodes_per_batch")
        if epochs is not None:
            for e in epochs:
                e.pop("episodes_per_batch", None)
            result["epochs"] = epochs
        http = server.stats() if server is not None else None
    window = config.window.window_length()
    return {
        **record_header(config),
        "batching": config.batching if config.loader == "lerobot-wds" else "dataloader",
        "status": "ok",
        "cameras": len(bundle.camera_keys),
        "window_length": window,
        "frames_per_sample": len(bundle.camera_keys) * window,
        **result,
        **mixing_report(episodes, config),
        "setup_s": setup_s,
        "peak_rss_mb": monitor.peak_rss_bytes / 2**20,
        "peak_worker_rss_mb": monitor.peak_child_rss_bytes / 2**20,
        "bytes_read": http.bytes_sent if http is not None else monitor.bytes_read,
        "bytes_read_method": "http_server" if http is not None else "proc_read_chars",
        "http_requests": http.requests if http is not None else None,
        "rank": int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))),
        "world_size": int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_avg_1m": {"start": load_start, "end": os.getloadavg()[0]},
        "versions": _versions(),
        "dataset": bundle.info | {"frames": bundle.dataset_frames},
    }
