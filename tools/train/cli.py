"""``lerobot-wds train``: the distributed training entry point (torchrun, ``accelerate launch``, SLURM).

    torchrun --nproc_per_node N -m lerobot_wds.tools.train.cli ROOT --preset sarm --batch-size 16 ...
    accelerate launch --num_processes N -m lerobot_wds.tools.train.cli ROOT ...

Rank and world size come from the launcher's environment (``RANK`` / ``WORLD_SIZE``, set by torchrun and
``accelerate launch``); the process group uses NCCL on CUDA, gloo on CPU. There is no DistributedSampler and
the DataLoader is not handed to ``accelerator.prepare``: every rank's ``LeRobotWdsDataset`` reads its own
episodes and yields the same number of batches. Each step's batch is built in place by the dataset
(``batch_size=``, ``DataLoader(batch_size=None)``).

Checkpoints (:mod:`train_checkpoint`) hold the model, optimizer, scheduler, step and epoch, and per rank
its RNG states and dataset stream state; ``--resume`` after ``kill -9`` continues with exactly the samples an
uninterrupted run would have consumed at every later step (the ``--log-samples`` files then equal an
uninterrupted run's).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from lerobot_wds.core.error_line import error_line
from lerobot_wds.core.errors import InputError, LeRobotWdsError
from lerobot_wds.core.redact import redact_url
from lerobot_wds.reader.dataset import LeRobotWdsDataset
from lerobot_wds.tools.train import checkpoint as ckpt
from lerobot_wds.tools.train.config import TrainConfig, add_arguments, config_from_args
from lerobot_wds.tools.train.metrics import StepMetrics, cache_summary
from lerobot_wds.tools.train.model import make_policy

WARMUP_STEPS = 10


def init_distributed(device: torch.device) -> tuple[int, int]:
    """Joins the launcher's process group when there is one; returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available here; use --device cpu or auto")
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


class SampleLog:
    """Each rank's ``{"rank", "step", "index"}`` JSON lines; on resume, cut back to the checkpoint's step."""

    def __init__(self, pattern: str | None, rank: int) -> None:
        self.path = Path(pattern.replace("{rank}", str(rank))) if pattern else None

    def truncate_after(self, step: int) -> None:
        if self.path is None or not self.path.exists():
            return
        keep = [ln for ln in self.path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        os.replace(tmp, self.path)

    def write(self, rank: int, step: int, index: torch.Tensor) -> None:
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps({"rank": rank, "step": step, "index": [int(i) for i in index]}) + "\n")


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def run(cfg: TrainConfig) -> int:
    device = pick_device(cfg.device)
    rank, world = init_distributed(device)
    ds = LeRobotWdsDataset(
        cfg.root,
        preset=cfg.preset,
        delta_timestamps=cfg.delta_timestamps,
        seed=cfg.seed,
        return_uint8=True,
        batch_size=cfg.batch_size,
        uneven="trim" if cfg.uneven == "trim" else "pad",
        rank=rank,
        world_size=world,
        cache_dir=cfg.cache_dir,
        cache_limit=cfg.cache_limit,
    )
    loader = DataLoader(
        ds,
        batch_size=None,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
    )
    window = max([len(v) for k, v in (ds.delta_timestamps or {}).items() if k in ds.camera_keys] or [1])
    metrics = StepMetrics(len(ds.camera_keys) * window, rank, world)
    samples = SampleLog(cfg.log_samples, rank)
    root = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    step = epoch = in_epoch = 0
    resumed: dict[str, Any] | None = None
    found = ckpt.complete_checkpoints(root) if cfg.resume and root is not None else []
    torch.manual_seed(cfg.seed + rank)
    if found:
        resumed, mine, states = ckpt.load(found[-1], rank)
        step, epoch, in_epoch = (resumed[k] for k in ("step", "epoch", "in_epoch"))
        saved_batch = (resumed.get("config") or {}).get("batch_size", cfg.batch_size)
        if saved_batch != cfg.batch_size:
            raise InputError(
                f"{found[-1]} was written with --batch-size {saved_batch}, this run has {cfg.batch_size}: resume "
                f"with --batch-size {saved_batch} (ranks and --num-workers may change)"
            )
        for state in states:  # every rank's: on another topology the rest of the epoch is re-planned over all
            ds.load_state_dict(state)
        elastic = ds.resumes_elastically(cfg.num_workers)  # checked here, not in a worker: one line on error
        if elastic:
            in_epoch = 0  # the re-planned rest of the epoch is counted from its start
        if mine is not None:
            ckpt.set_rng_state(mine["rng"])
        samples.truncate_after(step)
        if rank == 0:
            for gone in range(world, len(states)):  # ranks the checkpoint had and this run has not
                SampleLog(cfg.log_samples, gone).truncate_after(step)
            print(
                json.dumps({"resumed_from": str(found[-1]), "step": step, "epoch": epoch, "elastic": elastic}),
                flush=True,
            )
    model = opt = sched = ddp = None
    t_start = time.perf_counter()

    def done() -> bool:
        return bool(cfg.max_steps) and step >= cfg.max_steps

    while epoch < cfg.epochs and not done():
        ds.set_epoch(epoch)
        it = iter(loader)
        t_prev = time.perf_counter()
        finished = False
        while not done():
            t0 = time.perf_counter()
            batch = next(it, None)
            if batch is None:
                finished = True
                break
            t1 = time.perf_counter()
            if metrics.first_batch_s is None:
                metrics.first_batch_s = t1 - t_start
            index = batch["index"]
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            loss = None
            if not cfg.dummy:
                if model is None:
                    model = make_policy(ds.camera_keys, batch, device, cfg.seed)
                    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
                    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / WARMUP_STEPS))
                    if resumed is not None:
                        model.load_state_dict(resumed["model"])
                        opt.load_state_dict(resumed["optimizer"])
                        sched.load_state_dict(resumed["scheduler"])
                    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
                assert ddp is not None and opt is not None and sched is not None  # built on the first batch
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    out = ddp(batch)  # DDP's forward syncs gradients
                opt.zero_grad(set_to_none=True)
                out.backward()
                opt.step()
                sched.step()
                loss = float(out.detach())
            step += 1
            in_epoch += 1
            samples.write(rank, step, index)
            t_end = time.perf_counter()
            metrics.record(t_end - t_prev, t1 - t0, len(index), loss)
            t_prev = t_end
            if step % cfg.log_every == 0:
                metrics.emit(step, epoch, cache_summary({0: ds.stats()}))  # the rank's workers, summed
            if root is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                save(root, cfg, ds, rank, world, step, epoch, in_epoch, model, opt, sched)
        del it
        if finished:
            epoch, in_epoch = epoch + 1, 0
    if metrics.steps:
        metrics.emit(step, epoch, cache_summary({0: ds.stats()}))  # the rank's workers, summed
    _barrier()
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def save(
    root: Path,
    cfg: TrainConfig,
    ds: LeRobotWdsDataset,
    rank: int,
    world: int,
    step: int,
    epoch: int,
    in_epoch: int,
    model: Any,
    opt: Any,
    sched: Any,
) -> None:
    """Writes every rank's part, then rank 0 publishes the checkpoint (a collective: all ranks call it)."""
    mine = {"dataset": ds.loader_state_dict(in_epoch, cfg.batch_size, cfg.num_workers), "rng": ckpt.rng_state()}
    train = None
    if rank == 0:
        train = {
            "step": step,
            "epoch": epoch,
            "in_epoch": in_epoch,
            "config": asdict(cfg) | {"root": redact_url(cfg.root)},  # checkpoints get shared: no credentials
            "model": model.state_dict() if model is not None else None,
            "optimizer": opt.state_dict() if opt is not None else None,
            "scheduler": sched.state_dict() if sched is not None else None,
        }
    ckpt.write_part(root, step, rank, mine, train)
    _barrier()
    if rank == 0:
        ckpt.publish(root, step, world, cfg.keep_checkpoints)
    _barrier()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``train`` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="distributed training entry point (torchrun / accelerate / SLURM)",
        description="Train a small policy (or, with --dummy, only pull batches) on a converted root; run it under "
        "torchrun, accelerate launch or SLURM for several processes.",
    )
    add_arguments(p)
    p.set_defaults(func=cli_run)


def cli_run(args: argparse.Namespace) -> int:
    """Runs the configured training; bad options or input print one line and exit 2."""
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"lerobot-wds train: error: {e}", file=sys.stderr)
        return 2
    try:
        return run(cfg)
    except LeRobotWdsError as e:
        print(f"lerobot-wds train: error: {error_line(e)}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lerobot_wds.tools.train.cli",
        description="The distributed training entry point (torchrun, accelerate launch, SLURM).",
    )
    add_arguments(parser)
    return cli_run(parser.parse_args(argv))


if __name__ == "__main__":
    from lerobot_wds.tools.process_exit import run_main

    run_main(main)
