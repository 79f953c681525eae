"""Every subcommand, run many times as a real process, exits with its documented code every time.

A native thread left joinable at interpreter teardown (pyarrow's IO / CPU pools) used to abort ``verify``
with exit 134 after it had printed its verdict, in about 1 run of 10; anything reading exit codes (SLURM
``afterok``, CI, ``&&``) then failed at random. Codes: 0 ok, 1 problems found, 2 could not run.
Subcommands: convert, finalize, verify, inspect, bench, train, demo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert

SCRIPT = Path(sys.executable).with_name("lerobot-wds")
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "lerobot_wds.tools.cli"]
RUNS = int(os.environ.get("LEROBOT_WDS_EXIT_RUNS", "30"))


def run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=300)


def repeat(times: int, args: list[str], code: int, must_print: str) -> None:
    """Runs the command ``times`` times; every run must exit ``code`` and print ``must_print``."""
    bad = []
    for i in range(times):
        proc = run(*args)
        if proc.returncode != code or must_print not in proc.stdout + proc.stderr:
            bad.append(f"run {i}: exit {proc.returncode}, stderr tail {proc.stderr[-300:]!r}")
    assert not bad, f"{' '.join(args)}: {len(bad)} of {times} runs did not exit {code}:\n" + "\n".join(bad)


@pytest.fixture(scope="module")
def many_shards(small_lerobot_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small dataset, one episode per shard (every shard's parquet read starts pyarrow's pools)."""
    dest = tmp_path_factory.mktemp("exit_codes") / "root"
    convert(
        ConvertConfig(source=str(small_lerobot_dataset.root), dest=str(dest), target_shard_bytes=1, progress=False)
    )
    return dest


def test_verify_good_root_exits_0_every_time(many_shards: Path) -> None:
    repeat(RUNS, ["verify", str(many_shards)], 0, ": OK (")


def test_verify_corrupt_root_exits_1_every_time(many_shards: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    subprocess.run(["cp", "-r", str(many_shards), str(bad)], check=True)
    shard = sorted((bad / "shards").glob("*.tar"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    repeat(max(5, RUNS // 3), ["verify", str(bad)], 1, "sha256")


def test_inspect_exits_0_every_time(many_shards: Path) -> None:
    repeat(max(5, RUNS // 3), ["inspect", str(many_shards)], 0, "episodes")


def test_convert_and_finalize_exit_0_every_time(small_lerobot_dataset, tmp_path: Path) -> None:
    src = str(small_lerobot_dataset.root)
    for i in range(5):
        dest = tmp_path / f"parts{i}"
        for part in ("0/2", "1/2"):
            repeat(1, ["convert", src, str(dest), "--shard-size", "1", "--part", part, "--no-progress"], 0, "part")
        repeat(1, ["finalize", str(dest)], 0, "manifest")
        assert (dest / "manifest.json").exists()


def test_bench_exits_0_every_time(many_shards: Path, tmp_path: Path) -> None:
    for i in range(3):
        args = [
            "bench",
            str(many_shards),
            "--mode",
            "single",
            "--num-workers",
            "1",
            "--batch-size",
            "2",
            "--num-batches",
            "2",
            "--warmup",
            "0",
            "--out",
            str(tmp_path / f"b{i}"),
        ]
        repeat(1, args, 0, "frames/s")


def test_train_exits_0_every_time(many_shards: Path, tmp_path: Path) -> None:
    args = [
        "train",
        str(many_shards),
        "--dummy",
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--num-workers",
        "0",
        "--log-every",
        "1",
    ]
    repeat(3, args, 0, '"step": 2')
    repeat(2, ["train", str(many_shards), "--batch-size", "0"], 2, "--batch-size must be >= 1")


@pytest.mark.slow
def test_demo_exits_0(tmp_path: Path) -> None:
    repeat(2, ["demo", "--workdir", str(tmp_path / "demo")], 0, "DEMO OK")


def test_usage_errors_exit_2() -> None:
    repeat(3, ["verify"], 2, "usage")
    repeat(3, ["no-such-command"], 2, "invalid choice")
