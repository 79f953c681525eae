"""The training entry point under real launchers: torchrun and ``accelerate launch`` (gloo, CPU), kill -9 and
``--resume``, and torchdata's StatefulDataLoader over the dataset's state.

A multi-process test fails when a rank wrote no sample log (a rank that never started is a failure).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch.utils.data import DataLoader
from train_helpers import kill9_after_checkpoint

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.testing.synth import CAMS_2, LeRobotSpec, make_dataset

LENGTHS = (23, 31, 17, 40, 12, 28, 35, 19, 26, 33, 14, 37, 21, 29, 16, 38, 25, 30)  # 494 frames
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("train")
    src = make_dataset(LeRobotSpec(codec="av1", cameras=CAMS_2, episode_lengths=LENGTHS, fps=30), base / "src")
    dest = base / "wds"
    convert(ConvertConfig(source=str(src.root), dest=str(dest), order="source", progress=False))
    return dest


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    return {**env, "OMP_NUM_THREADS": "1"}


def _args(root: Path, ckpt: Path, out: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "lerobot_wds.tools.train.cli",
        str(root),
        "--preset",
        "sarm",
        "--batch-size",
        "4",
        "--num-workers",
        "2",
        "--max-steps",
        "40",
        "--checkpoint-dir",
        str(ckpt),
        "--checkpoint-every",
        "10",
        "--seed",
        "3",
        "--dummy",
        "--log-samples",
        str(out / "samples-{rank}.jsonl"),
        *extra,
    ]


def _logs(out: Path, ranks: int = 2) -> list[list[dict]]:
    files = sorted(out.glob("samples-*.jsonl"))
    assert [f.name for f in files] == [f"samples-{r}.jsonl" for r in range(ranks)], "a rank wrote no sample log"
    return [[json.loads(ln) for ln in f.read_text().splitlines()] for f in files]


def _check_disjoint_equal(logs: list[list[dict]], steps: int, batch: int) -> None:
    assert [len(r) for r in logs] == [steps] * len(logs)  # equal step counts
    for per_step in zip(*logs, strict=True):
        assert [e["step"] for e in per_step] == [per_step[0]["step"]] * len(per_step)
        assert all(len(e["index"]) == batch for e in per_step)
    seen = [i for r in logs for e in r for i in e["index"]]
    assert len(seen) == len(set(seen))  # ranks never share a sample within the epoch


@pytest.mark.slow
def test_torchrun_kill9_then_resume_logs_exactly_the_uninterrupted_samples(root: Path, tmp_path: Path) -> None:
    ref_out, run_out = tmp_path / "ref", tmp_path / "run"
    ref_out.mkdir()
    run_out.mkdir()
    ref = subprocess.run(
        [*TORCHRUN, *_args(root, tmp_path / "ref_ckpt", ref_out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert ref.returncode == 0, ref.stderr[-3000:]
    reference = _logs(ref_out)
    _check_disjoint_equal(reference, 40, 4)
    assert sorted(p.name for p in (tmp_path / "ref_ckpt").iterdir()) == ["step-00000030", "step-00000040"]

    ckpt = tmp_path / "ckpt"
    kill9_after_checkpoint(
        [*TORCHRUN, *_args(root, ckpt, run_out)], ckpt / "step-00000020", ckpt / "step-00000040"
    )
    killed_at = max(json.loads(ln)["step"] for ln in (run_out / "samples-0.jsonl").read_text().splitlines())
    assert killed_at < 40

    again = subprocess.run(
        [*TORCHRUN, *_args(root, ckpt, run_out, "--resume")],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert '"resumed_from"' in again.stdout and '"step": 20' in again.stdout
    assert _logs(run_out) == reference  # every step of every rank: the uninterrupted run's samples


@pytest.mark.slow
def test_torchrun_training_logs_finite_loss(root: Path, tmp_path: Path) -> None:
    args = [
        "-m",
        "lerobot_wds.tools.train.cli",
        str(root),
        "--batch-size",
        "4",
        "--num-workers",
        "1",
        "--max-steps",
        "6",
        "--log-every",
        "3",
        "--log-samples",
        str(tmp_path / "samples-{rank}.jsonl"),
    ]
    proc = subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_disjoint_equal(_logs(tmp_path), 6, 4)
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert [ln["step"] for ln in lines] == [3, 6]
    assert all(math.isfinite(ln["loss"]) for ln in lines)
    assert all(ln["frames_per_s_rank"] > 0 and 0 <= ln["data_wait_fraction"] <= 1 for ln in lines)
    assert lines[-1]["loader_cache"]["decoded_frames"] > 0


@pytest.mark.slow
def test_accelerate_launch_two_processes(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    # accelerate 1.x runs `--cpu` as ONE process (simple launcher); its multi-process launcher is --multi_gpu,
    # which on a CPU-only host starts the processes with torch's elastic launcher (the script then uses gloo)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "lerobot_wds.tools.train.cli",
        str(root),
        "--batch-size",
        "4",
        "--num-workers",
        "1",
        "--max-steps",
        "5",
        "--dummy",
        "--log-samples",
        str(tmp_path / "samples-{rank}.jsonl"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_disjoint_equal(_logs(tmp_path), 5, 4)


def test_stateful_dataloader_resumes_exactly(root: Path) -> None:
    tnodes = pytest.importorskip("torchdata.stateful_dataloader")
    kw = dict(preset="single", seed=2, return_uint8=True, batch_size=5)
    full = [
        b["index"].tolist() for b in DataLoader(LeRobotWdsDataset(str(root), **kw), batch_size=None, num_workers=2)
    ]
    loader = tnodes.StatefulDataLoader(LeRobotWdsDataset(str(root), **kw), batch_size=None, num_workers=2)
    head = []
    for b in loader:
        head.append(b["index"].tolist())
        if len(head) == 7:
            break
    state = loader.state_dict()
    resumed = tnodes.StatefulDataLoader(LeRobotWdsDataset(str(root), **kw), batch_size=None, num_workers=2)
    resumed.load_state_dict(state)
    rest = [b["index"].tolist() for b in resumed]
    assert head + rest == full


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_torchrun_nodes_with_node_local_caches_keep_their_samples(root: Path, tmp_path: Path) -> None:
    """Two "nodes" (separate torchrun process groups on a loopback rendezvous), each with its own cache dir,
    train two epochs over loopback HTTP: each node reads the same samples in both epochs (in another order),
    the nodes never share one, and each cache holds only its node's episodes."""
    from lerobot_wds.core.format import Manifest
    from lerobot_wds.testing.http_server import LoopbackHTTPServer

    manifest = Manifest.from_json_bytes((root / "manifest.json").read_bytes(), where="manifest.json")
    digests = {e.sha256 for s in manifest.shards for e in s.extents}
    port = _free_port()
    with LoopbackHTTPServer(root) as server:
        procs = []
        for node in (0, 1):
            cmd = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(node),
                "--master-addr",
                "127.0.0.1",
                "--master-port",
                str(port),
                "-m",
                "lerobot_wds.tools.train.cli",
                server.url,
                "--dummy",
                "--batch-size",
                "4",
                "--num-workers",
                "2",
                "--epochs",
                "2",
                "--seed",
                "5",
                "--cache-dir",
                str(tmp_path / f"cache-{node}"),
                "--cache-limit",
                str(10**9),
                "--log-samples",
                str(tmp_path / f"node{node}-samples-{{rank}}.jsonl"),
            ]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
            )
        outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    shares = []
    for node in (0, 1):
        (log,) = tmp_path.glob(f"node{node}-samples-*.jsonl")
        steps = [json.loads(ln) for ln in log.read_text().splitlines()]
        half = len(steps) // 2
        epochs = [[i for s in part for i in s["index"]] for part in (steps[:half], steps[half:])]
        assert len(steps) == 2 * half and set(epochs[0]) == set(epochs[1])  # the same samples every epoch
        assert epochs[0] != epochs[1]  # in another order
        shares.append(set(epochs[0]))
        entries = set(os.listdir(tmp_path / f"cache-{node}" / "entries"))
        assert entries <= digests and 0 < len(entries) < len(digests)  # the node's episodes only
    assert not shares[0] & shares[1]
    assert len(shares[0] | shares[1]) == manifest.total_frames
