"""``train-lerobot`` and the reader's lerobot API against lerobot 0.6.1 itself (CI's conformance environment).

A dataset is written by lerobot's own recorder and converted by our converter. Checked:
- ``ds.meta`` equals ``LeRobotDatasetMetadata`` of the source (features, fps, keys, counts, every stat).
- ``lerobot-wds train-lerobot ROOT --policy.type=act ...`` (the documented command) trains: exit 0, finite
  losses logged, lerobot's checkpoints in OUT/checkpoints.
- 2 processes under ``accelerate launch`` on CPU: each rank's samples are disjoint, the epoch's every frame
  is seen, losses are finite.
- kill -9 after a checkpoint, then ``--resume``: the resumed run takes exactly the uninterrupted run's samples.
All on CPU with a small ACT (the tests that are not the documented command shrink the transformer).
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.conformance
pytest.importorskip("lerobot")
pytest.importorskip("accelerate")

import torch  # noqa: E402
from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402

from lerobot_wds import LeRobotWdsDataset  # noqa: E402
from lerobot_wds.convert.config import ConvertConfig  # noqa: E402
from lerobot_wds.convert.pipeline import convert  # noqa: E402
from lerobot_wds.reader.meta import DatasetMeta  # noqa: E402
from lerobot_wds.testing.shards import make_frame  # noqa: E402

FPS = 10
CAMERAS = {"observation.images.front": (64, 64), "observation.images.wrist": (96, 72)}
LENGTHS = (20, 14, 17, 9)
TASKS = ("pick up the cube", "open the drawer", "pick up the cube", "close the drawer")
CLI = [sys.executable, "-m", "lerobot_wds.tools.cli", "train-lerobot"]
# lerobot's ACT, made small enough for a CPU test (the documented command in test_documented_command keeps it)
SMALL_ACT = [
    "--policy.type=act",
    "--policy.pretrained_backbone_weights=null",
    "--policy.dim_model=64",
    "--policy.dim_feedforward=128",
    "--policy.n_heads=2",
    "--policy.chunk_size=10",
    "--policy.n_action_steps=10",
    "--policy.use_vae=false",
    "--policy.device=cpu",
    "--policy.push_to_hub=false",
    "--wandb.enable=false",
]
LOSS = re.compile(r"(?<![\w])loss:(\S+)")  # the total loss, not l1_loss / kld_loss


def _write_with_lerobot(root: Path) -> Path:
    ds = LeRobotDataset.create(
        repo_id="local/train_conformance",
        fps=FPS,
        features={
            **{
                key: {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
                for key, (w, h) in CAMERAS.items()
            },
            "observation.state": {"dtype": "float32", "shape": (3,), "names": ["s0", "s1", "s2"]},
            "action": {"dtype": "float32", "shape": (2,), "names": ["a0", "a1"]},
        },
        root=root,
        use_videos=True,
        image_writer_threads=0,
    )
    for ep, n in enumerate(LENGTHS):
        for k in range(n):
            frame = {key: make_frame(ep, k, ci, w, h) for ci, (key, (w, h)) in enumerate(CAMERAS.items())}
            frame["observation.state"] = np.array([ep * 100.0 + k, k * 0.5, -ep], dtype=np.float32)
            frame["action"] = np.array([k / 3.0, ep - k], dtype=np.float32)
            frame["task"] = TASKS[ep]
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return root


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("train_conf")
    src = _write_with_lerobot(base / "lerobot")
    dest = base / "wds"
    # source order: the transform test compares unshuffled samples with lerobot's by position
    convert(
        ConvertConfig(
            source=str(src), dest=str(dest), progress=False, target_shard_bytes=60_000, workers=1, order="source"
        )
    )
    return src, dest


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return env


def _train(
    args: list[str], timeout: float = 600, launcher: list[str] | None = None
) -> subprocess.CompletedProcess:
    cmd = [
        *(launcher or []),
        *(CLI if launcher is None else ["-m", "lerobot_wds.tools.cli", "train-lerobot"]),
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_at_checkpoint(cmd: list[str], out: Path, step: int) -> None:
    """Runs ``cmd`` until lerobot links ``out/checkpoints/last`` to the complete checkpoint of ``step``, then
    kills its process group with SIGKILL."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        last = out / "checkpoints" / "last"
        while not (last.is_symlink() and os.readlink(last).endswith(f"{step:06d}")):
            assert proc.poll() is None and time.monotonic() < deadline, f"no checkpoint at step {step}"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _losses(output: str) -> list[float]:
    return [float(x) for x in LOSS.findall(output)]


def _log(path: Path) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """{(rank, step): [(episode_index, frame_index), ...]} from a --wds.sample_log file."""
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[(rec["rank"], rec["step"])] = [tuple(p) for p in rec["samples"]]
    return out


# --- meta ---------------------------------------------------------------------------------------------------


def _assert_meta_equal(ours, theirs) -> None:
    assert ours.features == theirs.features
    assert ours.fps == theirs.fps == FPS
    assert ours.camera_keys == theirs.camera_keys == list(CAMERAS)
    assert ours.video_keys == theirs.video_keys
    assert (ours.total_episodes, ours.total_frames) == (theirs.total_episodes, theirs.total_frames)
    assert (ours.total_episodes, ours.total_frames) == (len(LENGTHS), sum(LENGTHS))
    assert ours.robot_type == theirs.robot_type
    assert set(ours.stats) == set(theirs.stats)
    for key, stats in theirs.stats.items():
        assert set(ours.stats[key]) == set(stats), key
        for name, value in stats.items():
            np.testing.assert_allclose(ours.stats[key][name], value, err_msg=f"{key} {name}")


def test_meta_equals_lerobots_metadata_of_the_source(converted: tuple[Path, Path]) -> None:
    src, dest = converted
    theirs = LeRobotDatasetMetadata("local/train_conformance", root=src)
    ds = LeRobotWdsDataset(str(dest))
    assert isinstance(ds.meta, LeRobotDatasetMetadata)
    _assert_meta_equal(ds.meta, theirs)
    assert list(ds.meta.tasks.index) == list(theirs.tasks.index)
    assert ds.meta.tasks["task_index"].tolist() == theirs.tasks["task_index"].tolist()
    assert ds.meta.info.to_dict() == theirs.info.to_dict()
    _assert_meta_equal(DatasetMeta.read(dest), theirs)  # the lerobot-free object agrees too
    full = LeRobotDataset("local/train_conformance", root=src)
    assert (ds.num_frames, ds.num_episodes) == (full.num_frames, full.num_episodes)
    sub = LeRobotDataset("local/train_conformance", root=src, episodes=[1, 3])
    ours = LeRobotWdsDataset(str(dest), episodes=[1, 3])
    assert (ours.num_frames, ours.num_episodes) == (sub.num_frames, sub.num_episodes) == (23, 2)
    got = sorted((int(s["episode_index"]), int(s["frame_index"])) for s in ours)
    assert got == sorted((int(sub[i]["episode_index"]), int(sub[i]["frame_index"])) for i in range(len(sub)))


def test_image_transforms_match_lerobots(converted: tuple[Path, Path]) -> None:
    """A deterministic transform gives lerobot's exact pixels (lerobot applies it per camera after decoding)."""
    src, dest = converted

    def transform(image: torch.Tensor) -> torch.Tensor:
        return (image.flip(-1) * 0.5).clamp(0, 1) if image.dtype == torch.float32 else 255 - image

    delta = {key: [-0.2, 0.0] for key in CAMERAS}
    theirs = LeRobotDataset(
        "local/train_conformance", root=src, image_transforms=transform, delta_timestamps=delta
    )
    ours = list(LeRobotWdsDataset(str(dest), shuffle=False, image_transforms=transform, delta_timestamps=delta))
    assert len(ours) == len(theirs)
    for i in (0, 1, 19, 20, 33, 59):
        for key in CAMERAS:
            assert torch.equal(ours[i][key], theirs[i][key]), (i, key)
    batches = list(
        LeRobotWdsDataset(
            str(dest), shuffle=False, image_transforms=transform, delta_timestamps=delta, batch_size=8
        )
    )
    for key in CAMERAS:
        assert torch.equal(torch.cat([b[key] for b in batches]), torch.stack([theirs[i][key] for i in range(60)]))


# --- train-lerobot ------------------------------------------------------------------------------------------


def test_documented_command_trains_and_checkpoints(converted: tuple[Path, Path], tmp_path: Path) -> None:
    _, dest = converted
    out = tmp_path / "out"
    proc = _train(
        [
            str(dest),
            "--policy.type=act",
            "--policy.pretrained_backbone_weights=null",
            "--steps=20",
            "--batch_size=4",
            "--policy.device=cpu",
            "--policy.push_to_hub=false",
            "--wandb.enable=false",
            f"--output_dir={out}",
            "--log_freq=5",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    losses = _losses(text)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses), losses
    assert "each of 1 ranks reads its own episodes" in text
    last = out / "checkpoints" / "last"
    assert last.is_symlink() and (out / "checkpoints" / "000020").is_dir()
    pretrained = last / "pretrained_model"
    assert (pretrained / "model.safetensors").stat().st_size > 0
    assert json.loads((pretrained / "config.json").read_text())["type"] == "act"
    assert json.loads((last / "training_state" / "training_step.json").read_text())["step"] == 20
    # the normalizer's stats are the root's (lerobot's own processor files)
    assert any(p.name.startswith("policy_preprocessor") for p in pretrained.iterdir())


def test_two_processes_under_accelerate_read_disjoint_episodes(
    converted: tuple[Path, Path], tmp_path: Path
) -> None:
    _, dest = converted
    ds = LeRobotWdsDataset(str(dest), batch_size=4, rank=0, world_size=2)
    steps = math.ceil(ds.samples_per_rank(num_workers=0) / 4)  # one epoch per rank (30 frames each -> 8)
    log = tmp_path / "samples-{rank}.jsonl"
    # accelerate's multi-process launcher (torch.distributed.run); --policy.device=cpu makes lerobot's
    # Accelerator a CPU one (gloo). accelerate's own --cpu launch needs mpirun for more than one process.
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes=2",
        "--num_machines=1",
        "--mixed_precision=no",
        "--dynamo_backend=no",
        f"--main_process_port={_port()}",
    ]
    proc = _train(
        [
            str(dest),
            *SMALL_ACT,
            f"--steps={steps}",
            "--batch_size=4",
            "--num_workers=0",
            "--log_freq=2",
            f"--output_dir={tmp_path / 'out'}",
            "--save_checkpoint=false",
            f"--wds.sample_log={log}",
        ],
        launcher=launcher,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "each of 2 ranks reads its own episodes" in text
    losses = _losses(text)
    assert losses and all(math.isfinite(x) for x in losses)
    per_rank = {}
    for rank in range(2):
        records = _log(Path(str(log).replace("{rank}", str(rank))))
        assert sorted(s for _, s in records) == list(range(steps))
        per_rank[rank] = [pair for batch in records.values() for pair in batch]
    assert len(per_rank[0]) == len(per_rank[1]) == 30
    assert not set(per_rank[0]) & set(per_rank[1])
    every = {(e, k) for e, n in enumerate(LENGTHS) for k in range(n)}
    assert set(per_rank[0]) | set(per_rank[1]) == every


def test_resume_after_kill_continues_with_the_same_samples(converted: tuple[Path, Path], tmp_path: Path) -> None:
    _, dest = converted
    common = [
        str(dest),
        *SMALL_ACT,
        "--steps=24",
        "--batch_size=4",
        "--num_workers=2",
        "--save_freq=6",
        "--log_freq=3",
        "--seed=5",
    ]
    ref_log = tmp_path / "ref.jsonl"
    ref = _train([*common, f"--output_dir={tmp_path / 'ref'}", f"--wds.sample_log={ref_log}"])
    assert ref.returncode == 0, ref.stderr[-3000:]
    want = _log(ref_log)
    assert sorted(want) == [(0, s) for s in range(24)]  # 60 frames / 4 = 15 batches per epoch: crosses an epoch

    out, run_log = tmp_path / "run", tmp_path / "run.jsonl"
    cmd = [*CLI, *common, f"--output_dir={out}", f"--wds.sample_log={run_log}"]
    _kill_at_checkpoint(cmd, out, 18)
    assert not (out / "checkpoints" / "000024").exists()  # killed before the end
    before = _log(run_log)
    for key, samples in before.items():
        assert samples == want[key]  # up to the kill the run took the reference's samples

    resumed_log = tmp_path / "resumed.jsonl"
    config = out / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    resumed = _train([str(dest), "--resume=true", f"--config_path={config}", f"--wds.sample_log={resumed_log}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = _log(resumed_log)
    assert sorted(got) == [(0, s) for s in range(18, 24)]
    for key, samples in got.items():
        assert samples == want[key], key
    assert all(math.isfinite(x) for x in _losses(resumed.stdout + resumed.stderr))
    assert (
        json.loads((out / "checkpoints" / "last" / "training_state" / "training_step.json").read_text())["step"]
        == 24
    )


def test_resume_with_other_workers_delivers_the_epoch_exactly_once(
    converted: tuple[Path, Path], tmp_path: Path
) -> None:
    _, dest = converted
    out, run_log = tmp_path / "run", tmp_path / "run.jsonl"
    common = [str(dest), *SMALL_ACT, "--steps=40", "--batch_size=4", "--save_freq=6", "--log_freq=3", "--seed=5"]
    cmd = [*CLI, *common, "--num_workers=2", f"--output_dir={out}", f"--wds.sample_log={run_log}"]
    _kill_at_checkpoint(cmd, out, 18)
    assert sorted(p.name for p in (out / "lerobot_wds_state" / "step-000000018").iterdir()) == ["rank-0.pt"]
    records = [json.loads(ln) for ln in run_log.read_text().splitlines()]
    before = [tuple(p) for r in records if r["step"] < 18 and r["epoch"] == 1 for p in r["samples"]]
    assert before and all(r["epoch"] == 0 for r in records if r["step"] < 16)  # 2 readers x 8 batches per epoch

    config = out / "checkpoints" / "last" / "pretrained_model" / "train_config.json"
    resumed_log = tmp_path / "resumed.jsonl"
    resumed = _train(
        [
            str(dest),
            "--resume=true",
            f"--config_path={config}",
            "--num_workers=1",
            f"--wds.sample_log={resumed_log}",
        ]
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        "the rest of epoch 1 re-planned over the new readers (workers per rank 2 -> 1)"
        in resumed.stderr + resumed.stdout
    )
    got = [json.loads(ln) for ln in resumed_log.read_text().splitlines()]
    assert [r["step"] for r in got] == list(range(18, 40))
    after = [tuple(p) for r in got if r["epoch"] == 1 for p in r["samples"]]
    every = {(e, k) for e, n in enumerate(LENGTHS) for k in range(n)}
    assert len(before) + len(after) == len(every) and set(before) | set(after) == every  # exactly once
    epoch2 = [tuple(p) for r in got if r["epoch"] == 2 for p in r["samples"]]
    assert len(epoch2) == len(set(epoch2)) and set(epoch2) <= every  # then the new shape's ordinary epoch


def test_failure_during_training_exits_1_with_its_traceback(converted: tuple[Path, Path], tmp_path: Path) -> None:
    _, dest = converted
    blocker = (
        tmp_path / "a_file"
    )  # the checkpoint at step 3 goes under it: NotADirectoryError, as a full disk would
    blocker.write_text("")
    log = tmp_path / "samples.jsonl"
    proc = _train(
        [
            str(dest),
            *SMALL_ACT,
            "--steps=8",
            "--batch_size=4",
            "--num_workers=0",
            "--save_freq=3",
            "--log_freq=1",
            f"--output_dir={blocker / 'out'}",
            f"--wds.sample_log={log}",
            "--dataset.video_backend=pyav",
            "--dataset.revision=v3.0",
        ]
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert sorted(s for _, s in _log(log)) == [0, 1, 2]  # it trained three steps, then failed at the checkpoint
    assert "Traceback (most recent call last)" in proc.stderr and "NotADirectoryError" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"lerobot-wds train-lerobot: training on {dest} failed: NotADirectoryError: "), last
    text = proc.stdout + proc.stderr
    said = "train-lerobot does not apply --dataset.video_backend=pyav, --dataset.revision=v3.0"
    assert text.count(said) == 1, text[-3000:]


def test_flags_that_do_not_parse_exit_2(converted: tuple[Path, Path], tmp_path: Path) -> None:
    _, dest = converted
    proc = _train([str(dest), *SMALL_ACT, "--steps=not-a-number", f"--output_dir={tmp_path / 'out'}"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        "lerobot-wds train-lerobot: error: lerobot-train's flags do not parse (lerobot's message is above)"
    )


def test_a_root_url_with_credentials_reaches_no_output(converted: tuple[Path, Path], tmp_path: Path) -> None:
    from lerobot_wds.testing.http_server import LoopbackHTTPServer

    _, dest = converted
    out = tmp_path / "out"
    secrets = ("PWSECRET", "SIGSECRET", "reader:")
    with LoopbackHTTPServer(dest.parent) as server:
        root = server.url.replace("http://", "http://reader:PWSECRET@") + f"/{dest.name}"
        args = [*SMALL_ACT, "--steps=2", "--batch_size=4", "--num_workers=0", "--save_freq=2", "--log_freq=1"]
        proc = _train([root, *args, f"--output_dir={out}"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        signed = _train([f"{root}?sv=2022-11-02&sig=SIGSECRET", *args, f"--output_dir={tmp_path / 'signed'}"])
    assert signed.returncode == 0, signed.stderr[-3000:]  # a signed root is read, its query on every request
    for said in (proc.stdout + proc.stderr, signed.stdout + signed.stderr):
        assert [s for s in secrets if s in said] == [], said[-3000:]
    for folder in (out, tmp_path / "signed"):
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert (
            len(files) > 5 and [str(p) for p in files if any(s.encode() in p.read_bytes() for s in secrets)] == []
        )
    config = json.loads((out / "checkpoints" / "last" / "pretrained_model" / "train_config.json").read_text())
    assert config["dataset"]["repo_id"] == f"lerobot_wds/{dest.name}"
