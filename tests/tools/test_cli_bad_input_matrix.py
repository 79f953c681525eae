"""Every subcommand on each kind of bad input: the documented exit code (0 all good, 1 problems found in the
data, 2 could not run) and one line, never a traceback, with 0 and 2 DataLoader workers where it reads.

Also: ``convert`` never writes into its source (DEST is the source, inside it, around it, a file, or an
unrelated non-empty folder), and a closed stdout pipe ends a command quietly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_wds.testing.shards import RootSpec, make_root

SCRIPT = Path(sys.executable).with_name("lerobot-wds")
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "lerobot_wds.tools.cli"]
SPEC = RootSpec(lengths=(5, 6, 4, 7), episodes_per_shard=1, cameras=("observation.images.c",))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The lines a failed command printed as its error."""
    return [line for line in proc.stderr.splitlines() if line.startswith("lerobot-wds ")]


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("matrix")
    good = base / "good"
    make_root(good, SPEC)
    trunc = base / "trunc"
    shutil.copytree(good, trunc)
    shard = trunc / "shards" / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:1000])
    garbage = base / "garbage"
    garbage.mkdir()
    (garbage / "manifest.json").write_text("not json")
    afile = base / "afile"
    afile.write_text("x")
    return {"good": good, "trunc": trunc, "garbage": garbage, "afile": afile, "missing": base / "missing"}


def check(proc: subprocess.CompletedProcess, code: int, must: str) -> None:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-2000:]
    assert proc.returncode == code, out[-2000:]
    if code:
        lines = error_lines(proc)
        assert len(lines) == 1 and must in lines[0], out[-2000:]


UNREACHABLE = "http://127.0.0.1:9/nothing"
READERS = ["inspect", "verify", "train", "bench"]


def reader_args(command: str, root: str, tmp: Path, workers: int = 0) -> list[str]:
    if command == "train":
        return ["train", root, "--dummy", "--max-steps", "20", "--batch-size", "4", "--num-workers", str(workers)]
    if command == "bench":
        args = ["--num-batches", "4", "--warmup", "0", "--batch-size", "4", "--num-workers", str(workers)]
        return ["bench", root, "--mode", "single", *args, "--out", str(tmp / "bench")]
    if command == "verify":
        return ["verify", root, "--retries", "0"]
    return [command, root]


@pytest.mark.parametrize("command", READERS)
@pytest.mark.parametrize("kind", ["missing", "garbage", "afile", "unreachable"])
def test_an_invalid_or_unreachable_root_exits_2(roots, tmp_path: Path, command: str, kind: str) -> None:
    root = UNREACHABLE if kind == "unreachable" else str(roots[kind])
    check(run(*reader_args(command, root, tmp_path)), 2, "error: ")


@pytest.mark.parametrize("command", ["train", "bench"])
@pytest.mark.parametrize("workers", [0, 2])
def test_a_worker_error_is_the_same_one_line(roots, tmp_path: Path, command: str, workers: int) -> None:
    proc = run(*reader_args(command, str(roots["trunc"]), tmp_path, workers))
    check(proc, 2, "shard-000001.tar: permanent error (ShortReadError: ")
    line = error_lines(proc)[0]
    assert line.endswith("(DataLoader worker 0)" if workers else "expected 9728 (truncated?))") or (
        workers and line.endswith("(DataLoader worker 1)")
    ), line


def test_verify_finds_the_truncated_shard_exit_1(roots) -> None:
    proc = run("verify", str(roots["trunc"]))
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert "shard-000001.tar" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard-size", "0"], "error: --shard-size must be >= 1, got 0"),
        (["--workers", "0"], "error: --workers must be >= 1, got 0"),
        (["--part", "3/2"], "error: --part must be in [0, 2), got 3"),
        (["--episodes", "99"], "error: episodes [99] are not in the source"),
        (["--max-staged-shards", "0"], "error: --max-staged-shards must be >= 1, got 0"),
    ],
)
def test_convert_bad_options_exit_2_naming_the_flag(small_lerobot_dataset, tmp_path: Path, args, message) -> None:
    proc = run("convert", str(small_lerobot_dataset.root), str(tmp_path / "out"), "--no-progress", *args)
    check(proc, 2, message)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_convert_unreachable_source_and_finalize_nothing_exit_2(tmp_path: Path) -> None:
    check(run("convert", UNREACHABLE, str(tmp_path / "o"), "--no-progress"), 2, "error: ")
    check(run("finalize", str(tmp_path / "nothing")), 2, "error: ")
    check(run("bench-report", str(tmp_path / "nothing")), 2, "error: no bench-*.json records")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_convert_never_writes_into_its_source(small_lerobot_dataset, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(small_lerobot_dataset.root, src)
    before = _tree(src)
    check(run("convert", str(src), str(src), "--no-progress"), 2, f"error: DEST {src} is the source")
    check(run("convert", str(src), str(src / "out"), "--no-progress"), 2, "is inside the source")
    check(run("convert", "src", "./src/../src/", "--no-progress", cwd=tmp_path), 2, "is the source")
    check(run("convert", str(src), str(tmp_path), "--no-progress"), 2, f"contains the source {src}")
    assert _tree(src) == before
    afile = tmp_path / "afile"
    afile.write_text("x")
    check(run("convert", str(src), str(afile), "--no-progress"), 2, f"DEST {afile} is a file, not a folder")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    check(run("convert", str(src), str(mine), "--no-progress"), 2, "is a non-empty folder holding no conversion")
    assert _tree(mine) == ["notes.txt"]
    # a folder of an earlier conversion of this source resumes
    out = tmp_path / "out"
    assert run("convert", str(src), str(out), "--no-progress").returncode == 0
    assert run("convert", str(src), str(out), "--no-progress").returncode == 0


def test_train_on_cuda_without_a_gpu_is_one_line(roots) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    proc = run("train", str(roots["good"]), "--dummy", "--device", "cuda", "--max-steps", "1")
    check(proc, 2, "error: --device cuda: no CUDA device is available here; use --device cpu or auto")


def test_a_closed_stdout_pipe_ends_quietly(roots) -> None:
    for _ in range(4):
        proc = subprocess.Popen(
            [*CLI, "inspect", str(roots["good"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.read(1)
        proc.stdout.close()  # what `| head -c 1` does
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) in (0, 141) and err == "", err


@pytest.mark.parametrize("part", ["shards", "manifest.json", "meta"])
def test_a_part_of_a_converted_root_names_the_root(roots, part: str) -> None:
    from lerobot_wds import LeRobotWdsDataset
    from lerobot_wds.reader.errors import NotConvertedRootError

    good = roots["good"]
    expected = f"{good / part} is part of the converted root {good}: give the root itself, {good}"
    with pytest.raises(NotConvertedRootError) as info:
        LeRobotWdsDataset(str(good / part))
    assert str(info.value) == expected
    check(run("inspect", str(good / part)), 2, expected)
    check(run("verify", str(good / part)), 2, expected)


def test_help_is_complete() -> None:
    import argparse

    from lerobot_wds.tools.cli import SUBCOMMANDS, build_parser

    for name in sorted(SUBCOMMANDS):
        parser = build_parser([name])
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        assert sub.description, f"{name}: no description"
        undescribed = [a.option_strings or [a.dest] for a in sub._actions if not a.help]
        assert not undescribed, f"{name}: options without help {undescribed}"
    text = run("convert", "--help").stdout
    assert "(default: 64MiB)" in " ".join(text.split()) and "(default: the CPU count, at most 8)" in " ".join(
        text.split()
    )
    proc = run("inspect", "somewhere", "--no-progress")
    assert proc.returncode == 2 and proc.stderr.startswith("usage: lerobot-wds inspect ")
    assert "error: unrecognized arguments: --no-progress" in proc.stderr
