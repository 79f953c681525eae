"""What a newcomer gets wrong, said once and the same way by Python and every CLI: one line, the fix, exit 2.

A LeRobot dataset given where a converted root is expected, a folder that does not exist, a window key that is
no feature, a preset misspelt: each is a ``LeRobotWdsError`` in Python and, through every subcommand that takes
it, one line naming the thing and saying what to run, exit 2 (could not run), never a traceback.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_wds import LeRobotWdsDataset, LeRobotWdsError
from lerobot_wds.reader.errors import NotConvertedRootError, OptionError, RootNotFoundError
from lerobot_wds.tools.bench.scenarios import BenchConfig
from lerobot_wds.tools.cli import build_parser, main

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]
ROOT_COMMANDS = {
    "inspect": ["inspect", "{root}"],
    "verify": ["verify", "{root}", "--no-progress"],
    "bench": ["bench", "{root}", "--out", "{tmp}/bench", "--num-workers", "0", "--num-batches", "1"],
    "train": ["train", "{root}", "--dummy", "--max-steps", "1", "--num-workers", "0"],
}


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(args)
    out = capsys.readouterr()
    return code, [ln for ln in (out.err + out.out).splitlines() if ln.strip()]


@pytest.mark.parametrize("command", sorted(ROOT_COMMANDS))
def test_a_lerobot_source_given_as_root_says_to_convert_it_first(
    command: str, small_lerobot_dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = str(small_lerobot_dataset.root)
    with pytest.raises(NotConvertedRootError) as e:
        LeRobotWdsDataset(src)
    expected = (
        f"{src} is a LeRobot dataset, not a converted root (it has meta/info.json but no manifest.json): "
        f"run 'lerobot-wds convert {src} DEST' first, then use DEST"
    )
    assert str(e.value) == expected
    args = [a.format(root=src, tmp=tmp_path) for a in ROOT_COMMANDS[command]]
    code, lines = run_main(args, capsys)
    assert (code, lines) == (2, [f"lerobot-wds {command}: error: {expected}"])


@pytest.mark.parametrize("command", sorted(ROOT_COMMANDS))
def test_a_root_that_does_not_exist_is_named(command: str, tmp_path: Path, capsys) -> None:
    missing = str(tmp_path / "no-such-root")
    with pytest.raises(RootNotFoundError):
        LeRobotWdsDataset(missing)
    args = [a.format(root=missing, tmp=tmp_path) for a in ROOT_COMMANDS[command]]
    code, lines = run_main(args, capsys)
    assert (code, lines) == (
        2,
        [f"lerobot-wds {command}: error: {missing}: no such folder; give the root a conversion wrote (its DEST)"],
    )


def test_convert_of_a_folder_that_does_not_exist_says_so(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "lerobot_v3"
    code, lines = run_main(["convert", str(missing), str(tmp_path / "out"), "--no-progress"], capsys)
    assert (code, lines) == (
        2,
        [
            f"lerobot-wds convert: error: {missing}: no such folder; SRC must be a LeRobot v3 dataset root "
            "(the folder holding meta/info.json)"
        ],
    )
    missing.mkdir()  # a folder, but no dataset in it
    code, lines = run_main(["convert", str(missing), str(tmp_path / "out"), "--no-progress"], capsys)
    assert code == 2 and len(lines) == 1 and "meta/info.json: missing, so" in lines[0]


def test_convert_of_a_converted_root_says_what_it_is(small_lerobot_dataset, tmp_path: Path, capsys) -> None:
    assert (
        run_main(["convert", str(small_lerobot_dataset.root), str(tmp_path / "a"), "--no-progress"], capsys)[0]
        == 0
    )
    code, lines = run_main(["convert", str(tmp_path / "a"), str(tmp_path / "b"), "--no-progress"], capsys)
    assert code == 2 and len(lines) == 1
    assert f"{tmp_path / 'a'} is a converted root (it has manifest.json), not a LeRobot dataset" in lines[0]


@pytest.fixture(scope="module")
def converted(small_lerobot_dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_wds.convert.config import ConvertConfig
    from lerobot_wds.convert.pipeline import convert

    dest = tmp_path_factory.mktemp("messages") / "root"
    convert(ConvertConfig(source=str(small_lerobot_dataset.root), dest=str(dest), progress=False))
    return dest


def test_python_mistakes_are_domain_errors(converted: Path) -> None:
    with pytest.raises(OptionError, match=r"preset='sarmm' is not a preset; expected one of \['single', 'sarm'\]"):
        LeRobotWdsDataset(str(converted), preset="sarmm")  # type: ignore[arg-type]
    with pytest.raises(LeRobotWdsError, match=r"delta_timestamps keys \['observation.images.side'\] are not"):
        LeRobotWdsDataset(str(converted), delta_timestamps={"observation.images.side": [-1.0, 0.0]})
    with pytest.raises(LeRobotWdsError, match=r"batch_size=0 \(int\); expected an integer >= 1 or None"):
        LeRobotWdsDataset(str(converted), batch_size=0)


def test_train_with_a_window_key_that_is_no_feature_is_one_line(converted: Path) -> None:
    bad = '{"observation.images.side": [-1.0, 0.0]}'
    proc = subprocess.run(
        [*CLI, "train", str(converted), "--dummy", "--num-workers", "0", "--delta-timestamps", bad],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(
        "lerobot-wds train: error: delta_timestamps keys ['observation.images.side'] are not features of this "
        "root; use some of ["
    )


def test_help_is_for_users(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "Convert LeRobot v3 video datasets" in top and "register" not in top and "``" not in top
    subparsers = next(a for a in build_parser([])._actions if isinstance(a, argparse._SubParsersAction))
    assert {"convert", "train-lerobot", "bench-profile"} <= set(subparsers.choices)
    for command in subparsers.choices:  # every subcommand
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and ":class:" not in text and ":mod:" not in text, (command, text)
        assert "s3:," not in text and "hf:," not in text, (command, text)  # URL schemes in help stay whole
    with pytest.raises(SystemExit):
        main(["train-lerobot", "--help"])
    assert "lerobot-train on a converted root" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "samples per batch and rank" in capsys.readouterr().out


def test_bench_config_is_one_readable_line() -> None:
    config = BenchConfig("https://u:pw@host/root", mode="sarm", num_workers=2, emulate_latency_ms=50)
    assert config.describe() == (
        "lerobot-wds on https://host/root [local]: mode sarm, batch 16, 2 workers, 50 batches after 5 warm-up, "
        "uint8, seed 0, device cpu, batching in the dataset, served over loopback HTTP (50 ms first byte, 0 MB/s)"
    )


def test_progress_ends_at_100_percent_and_a_local_destination_has_no_upload_progress(
    small_lerobot_dataset, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [*CLI, "convert", str(small_lerobot_dataset.root), str(tmp_path / "out"), "--shard-size", "20kB"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    finals = {}
    for line in proc.stderr.splitlines():
        name = line.split(":", 1)[0].strip()
        if name in ("convert", "convert written", "convert uploads"):
            finals[name] = line
    assert set(finals) == {"convert", "convert written"}, proc.stderr[-2000:]
    assert finals["convert"].startswith("convert: 4/4 episodes (100%)"), finals
    assert "(100%)" in finals["convert written"], finals


def test_finalize_of_a_folder_without_a_conversion_could_not_run(tmp_path: Path, capsys) -> None:
    for root in (tmp_path / "no-such-root", tmp_path):
        code, lines = run_main(["finalize", str(root)], capsys)
        assert (code, lines) == (
            2,
            [
                f"lerobot-wds finalize: error: {root}: no conversion there (no meta/info.json, no part "
                "manifests): give the DEST of 'lerobot-wds convert SRC DEST --part I/N'"
            ],
        )
