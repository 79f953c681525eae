"""The ``convert``/``finalize`` CLI and the SLURM scripts as real subprocesses, including kill -9 and re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from convert_helpers import output_bytes, s3_output_bytes
from fault_helpers import convert_args, wait_until

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]


def cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def reference(src: Path, dest: Path, **kw) -> dict[str, bytes]:
    convert(ConvertConfig(source=str(src), dest=str(dest), progress=False, **kw))
    return output_bytes(dest)


def test_cli_options_build_the_same_config_as_the_api(small_lerobot_dataset, tmp_path):
    src = small_lerobot_dataset.root
    stats = tmp_path / "stats.json"
    proc = cli(
        "convert",
        str(src),
        str(tmp_path / "cli"),
        "--shard-size",
        "20kB",
        "--episodes",
        "0-2",
        "--order",
        "shuffle",
        "--seed",
        "3",
        "--workers",
        "2",
        "--on-error",
        "skip",
        "--staging-dir",
        str(tmp_path / "stage"),
        "--no-progress",
        "--stats-json",
        str(stats),
    )
    expected = reference(
        src,
        tmp_path / "api",
        target_shard_bytes=20_000,
        episodes=(0, 1, 2),
        order="shuffle",
        seed=3,
        on_error="skip",
    )
    assert output_bytes(tmp_path / "cli") == expected
    assert "part 0/1: 3 episodes" in proc.stderr and "MB/s" in proc.stderr and "episodes/s" in proc.stderr
    summary = json.loads(stats.read_text())
    assert summary["episodes"] == 3 and summary["peak_rss_bytes"] > 0 and summary["manifest_written"]


def test_cli_errors_are_clear(small_lerobot_dataset, tmp_path):
    proc = cli("convert", str(small_lerobot_dataset.root), str(tmp_path / "o"), "--part", "auto", check=False)
    assert proc.returncode == 2 and "--part auto needs the SLURM array variables" in proc.stderr
    proc = cli(
        "convert", str(small_lerobot_dataset.root), str(tmp_path / "o"), "--shard-size", "12 parsecs", check=False
    )
    assert proc.returncode != 0 and "size unit 'parsecs'" in proc.stderr
    proc = cli("finalize", str(tmp_path / "nothing"), check=False)
    assert proc.returncode == 2 and "no part manifests" in proc.stderr and "Traceback" not in proc.stderr


def test_slurm_array_scripts_match_a_single_run(small_lerobot_dataset, tmp_path):
    src = small_lerobot_dataset.root
    expected = reference(src, tmp_path / "single", target_shard_bytes=1)
    env = {
        **os.environ,
        "SRC": str(src),
        "DEST": str(tmp_path / "array"),
        "CONVERT_ARGS": "--shard-size 1",
        "LEROBOT_WDS": str(_launcher(tmp_path)),
        "SLURM_ARRAY_TASK_COUNT": "3",
        "SLURM_ARRAY_TASK_MIN": "0",
        "SLURM_CPUS_PER_TASK": "1",
    }
    for task in (2, 0, 1):  # order does not matter
        task_env = {**env, "SLURM_ARRAY_TASK_ID": str(task)}
        subprocess.run(
            ["bash", str(REPO / "slurm/convert_array.sbatch")],
            env=task_env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        assert not (tmp_path / "array" / "manifest.json").exists()
    subprocess.run(
        ["bash", str(REPO / "slurm/convert_finalize.sbatch")],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert output_bytes(tmp_path / "array") == expected


def _launcher(tmp_path: Path) -> Path:
    """A one-line ``lerobot-wds`` wrapper running this interpreter (the scripts exec ``$LEROBOT_WDS``)."""
    path = tmp_path / "lerobot-wds"
    path.write_text(f'#!/bin/sh\nexec {sys.executable} -m lerobot_wds.tools.cli "$@"\n')
    path.chmod(0o755)
    return path


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_kill_after_first_shard_then_rerun_is_identical(small_lerobot_dataset, http_dir_server, tmp_path):
    # a slow (latency per request) HTTP source keeps the converter busy long after the first shard lands
    server = http_dir_server(small_lerobot_dataset.root, latency_ms=60)
    expected = reference(server.url, tmp_path / "ref", target_shard_bytes=1, order="source")
    out, stage = tmp_path / "out", tmp_path / "stage"
    args = convert_args(server.url, out, stage)
    left: Path | None = None  # the staging dir the killed run could not remove
    for kill_when in ("shards/shard-000000.tar", "_convert/shards/shard-000001.json"):
        proc = subprocess.Popen([*CLI, *args], stderr=subprocess.PIPE, text=True)
        wait_until(lambda p=out / kill_when: p.exists(), kill_when, proc)  # noqa: B023 - bound per iteration
        _kill(proc)
        assert not (out / "manifest.json").exists()
        # every file with a final shard name is complete and exact; temp files have other names
        for p in (out / "shards").iterdir():
            if not p.name.startswith("."):
                assert p.read_bytes() == expected[f"shards/{p.name}"], p.name
        # the killed run's staging dir stays behind; this run swept the one of the run killed before it
        (new_left,) = stage.iterdir()
        assert json.loads((new_left / "owner.json").read_text())["pid"] == proc.pid
        if left is not None:
            assert f"removed staging dir {left} left by killed run" in proc.stderr.read()
        left = new_left
    rerun = cli(*args)
    assert "resumed" in rerun.stderr
    assert f"removed staging dir {left} left by killed run" in rerun.stderr
    assert not list(stage.iterdir())
    assert output_bytes(out) == expected


def test_kill_mid_upload_to_s3_then_rerun_is_identical(small_lerobot_dataset, s3_bucket, s3_proxy, tmp_path):
    expected = reference(small_lerobot_dataset.root, tmp_path / "ref", target_shard_bytes=1)
    holding = s3_proxy.hold_put("/out/shards/shard-000001.tar")
    args = [
        "convert",
        str(small_lerobot_dataset.root),
        s3_bucket.url("out"),
        "--shard-size",
        "1",
        "--dest-options",
        json.dumps(s3_bucket.via(s3_proxy)),
        "--retry-backoff",
        "0.01",
        "--no-progress",
        "--staging-dir",
        str(tmp_path / "stage"),
    ]
    proc = subprocess.Popen([*CLI, *args], stderr=subprocess.PIPE, text=True)
    wait_until(holding.is_set, "the upload of shard 1 to be half sent", proc)
    _kill(proc)
    s3_proxy.state.release.set()
    prefix = f"{s3_bucket.name}/out"
    s3_bucket.fs.invalidate_cache()
    assert not s3_bucket.fs.exists(f"{prefix}/shards/shard-000001.tar")  # the interrupted upload left nothing
    assert not s3_bucket.fs.exists(f"{prefix}/manifest.json")
    assert s3_bucket.fs.cat_file(f"{prefix}/shards/shard-000000.tar") == expected["shards/shard-000000.tar"]
    cli(*args)
    assert s3_output_bytes(s3_bucket.fs, prefix) == expected
    manifest = json.loads(expected["manifest.json"])
    assert [s["path"] for s in manifest["shards"]] == [f"shards/shard-00000{i}.tar" for i in range(4)]


@pytest.mark.parametrize("part", ["0/2", "1/2"])
def test_part_manifest_names_the_part(small_lerobot_dataset, tmp_path, part):
    cli(
        "convert",
        str(small_lerobot_dataset.root),
        str(tmp_path / "o"),
        "--shard-size",
        "1",
        "--part",
        part,
        "--no-progress",
    )
    i = int(part[0])
    p = tmp_path / "o" / "_convert" / f"part-{i:05d}-of-00002.json"
    assert json.loads(p.read_text())["part_index"] == i
    assert not (tmp_path / "o" / "manifest.json").exists()
    shards = sorted(x.name for x in (tmp_path / "o" / "shards").iterdir())
    assert shards == [f"shard-{k:06d}.tar" for k in range(4) if k % 2 == i]
