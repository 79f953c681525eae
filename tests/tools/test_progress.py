"""Progress off a terminal is plain lines with real counts, never a bar's carriage returns or escape codes.

The commands run as a user runs them with ``2> log``: convert, verify and bench, stderr redirected to a file.
``LEROBOT_WDS_PROGRESS_EVERY_S=0`` asks for a line at every step, so the lines show each episode (verify
inside its one shard) or batch (bench) as it is done.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_wds.core.errors import InputError
from lerobot_wds.core.progress import EVERY_S_ENV, Progress

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_plain_line_every_period_and_a_last_one_on_close() -> None:
    out, clock = io.StringIO(), _Clock()
    progress = Progress(10000, "convert", "episodes", stream=out, every_s=10, clock=clock)
    for _ in range(12):  # 100 episodes a second
        clock.now += 1
        progress.update(100)
    clock.now += 238
    progress.update(8800)
    progress.close()
    progress.update(1)  # after close: nothing more is written
    assert out.getvalue().splitlines() == [
        "convert: 1000/10000 episodes (10%), 100.0 episodes/s, eta 1m30s, 10s elapsed",
        "convert: 10000/10000 episodes (100%), 40.0 episodes/s, 4m10s elapsed",
    ]  # close adds no line: the last one says it all
    closing = io.StringIO()
    with Progress(5, "verify", "episodes", stream=closing, every_s=10, clock=clock) as p:
        clock.now += 2
        p.update(5)
    assert closing.getvalue() == "verify: 5/5 episodes (100%), 2.5 episodes/s, 2s elapsed\n"


def test_bytes_scale_and_a_terminal_gets_the_bar() -> None:
    out, clock = io.StringIO(), _Clock()
    with Progress(3e9, "convert written", "B", unit_scale=True, stream=out, every_s=0, clock=clock) as p:
        clock.now += 2
        p.update(1.5e9)
    assert out.getvalue().splitlines()[0] == (
        "convert written: 1.5 GB/3.0 GB (50%), 750.0 MB/s, eta 2s, 2s elapsed"
    )
    tty = _Terminal()
    with Progress(4, "verify", "episodes", stream=tty) as p:
        p.update(4)
    assert "\r" in tty.getvalue() and "4/4" in tty.getvalue()  # tqdm's bar, on a terminal only
    quiet = io.StringIO()
    with Progress(4, "verify", "episodes", stream=quiet, enabled=False, every_s=0) as p:
        p.update(4)
    assert quiet.getvalue() == ""


def test_a_bad_period_in_the_environment_is_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVERY_S_ENV, "soon")
    with pytest.raises(InputError, match="LEROBOT_WDS_PROGRESS_EVERY_S='soon': expected seconds"):
        Progress(1, "verify", "episodes")


def _run(args: list[str], log: Path, every_s: str = "0") -> str:
    env = {**os.environ, EVERY_S_ENV: every_s}
    with open(log, "w") as err:
        proc = subprocess.run([*CLI, *args], stdout=subprocess.PIPE, stderr=err, text=True, env=env, timeout=600)
    text = log.read_text()
    assert proc.returncode == 0, text[-2000:]
    assert "\r" not in text and "\x1b" not in text, repr(text[-500:])
    return text


def _counts(text: str, desc: str, unit: str) -> list[tuple[int, int]]:
    found = re.findall(rf"^{desc}: (\d+)/(\d+) {unit} \(\d+%\), [\d.]+ {unit}/s", text, re.MULTILINE)
    return [(int(a), int(b)) for a, b in found]


def test_convert_verify_and_bench_into_a_log_write_plain_progress_lines(
    small_lerobot_dataset, tmp_path: Path
) -> None:
    dest = tmp_path / "wds"
    text = _run(["convert", str(small_lerobot_dataset.root), str(dest), "--workers", "1"], tmp_path / "c.log")
    assert _counts(text, "convert", "episodes") == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert re.search(r"^convert written: [\d.]+ [kM]B/[\d.]+ [kM]B \(100%\)", text, re.MULTILINE), text

    rerun = _run(["convert", str(small_lerobot_dataset.root), str(dest)], tmp_path / "rerun.log")
    done = "part 0/1: already complete: 4 episodes in 1 shards (resumed 1 shards, skipped 0 episodes), nothing to"
    assert f"{done} convert; manifest.json written" in rerun
    assert "0 episodes -> 0 shards" not in rerun and "convert:" not in rerun

    text = _run(["verify", str(dest)], tmp_path / "v.log")  # one shard: progress moves inside it
    assert _counts(text, "verify", "episodes") == [(1, 4), (2, 4), (3, 4), (4, 4)]

    bench = ["bench", str(dest), "--out", str(tmp_path / "b"), "--num-workers", "0", "--num-batches", "2"]
    text = _run([*bench, "--warmup", "1", "--batch-size", "2", "--rounds", "2"], tmp_path / "b.log")
    runs = re.findall(r"^running (\d)/2, round (\d)/2: lerobot-wds on ", text, re.MULTILINE)
    assert runs == [("1", "1"), ("2", "2")]
    want = [(1, 3), (2, 3), (3, 3)] * 2
    assert _counts(text, r"bench lerobot-wds single w=0", "batches") == want

    default = _run(["verify", str(dest)], tmp_path / "v10.log", every_s="10")  # a short run: only the last line
    assert _counts(default, "verify", "episodes") == [(4, 4)]
