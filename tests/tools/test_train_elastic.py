"""``lerobot-wds train --resume`` on another shape: a torchrun job of R ranks x W workers killed with ``kill -9``
after a mid-epoch checkpoint, resumed as R' x W' (gloo, CPU, real processes).

The ledger is every sample ``index`` the ranks logged: the killed run's up to the checkpoint's step (the
resumed run cuts every log back to it, those of ranks it no longer has too) and the resumed run's to the end
of the epoch. It must hold the epoch exactly once: with ``--uneven pad`` every frame, repeated only by the
resumed plan's padding; with ``--uneven trim`` no frame twice, fewer than R' x W' dropped.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from train_helpers import clean_env, kill9_after_checkpoint, sample_logs, torchrun

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.testing.synth import CAMS_2, LeRobotSpec, make_dataset

LENGTHS = (23, 31, 17, 40, 12, 28, 35, 19, 26, 33, 14, 37, 21, 29, 16, 38, 25, 30)  # 494 frames
FRAMES = sum(LENGTHS)
BATCH = 4


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("elastic")
    src = make_dataset(LeRobotSpec(codec="av1", cameras=CAMS_2, episode_lengths=LENGTHS, fps=30), base / "src")
    dest = base / "wds"
    convert(ConvertConfig(source=str(src.root), dest=str(dest), progress=False))
    return dest


def _cmd(root: Path, tmp: Path, ranks: int, workers: int, preset: str, uneven: str, *extra: str) -> list[str]:
    return [
        *torchrun(ranks),
        "-m",
        "lerobot_wds.tools.train.cli",
        str(root),
        "--dummy",
        "--preset",
        preset,
        "--uneven",
        uneven,
        "--batch-size",
        str(BATCH),
        "--num-workers",
        str(workers),
        "--epochs",
        "1",
        "--seed",
        "5",
        "--checkpoint-dir",
        str(tmp / "ckpt"),
        "--checkpoint-every",
        "6",
        "--log-samples",
        str(tmp / "samples-{rank}.jsonl"),
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "old, new, preset, uneven",
    [
        ((2, 2), (3, 1), "single", "pad"),
        ((1, 1), (2, 3), "sarm", "trim"),
        ((4, 2), (2, 1), "sarm", "pad"),
    ],
)
def test_kill9_then_resume_on_another_shape_delivers_the_epoch_exactly_once(
    root: Path, tmp_path: Path, old: tuple[int, int], new: tuple[int, int], preset: str, uneven: str
) -> None:
    ckpt = tmp_path / "ckpt"
    kill9_after_checkpoint(
        _cmd(root, tmp_path, *old, preset, uneven), ckpt / "step-00000006", ckpt / "step-00000018"
    )
    again = subprocess.run(
        _cmd(root, tmp_path, *new, preset, uneven, "--resume"),
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_env(),
    )
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads(next(ln for ln in again.stdout.splitlines() if '"resumed_from"' in ln))
    assert resumed["elastic"] is True and resumed["step"] in (6, 12)
    step = resumed["step"]
    logs = sample_logs(tmp_path, max(old[0], new[0]))
    before = [i for log in logs for e in log if e["step"] <= step for i in e["index"]]
    after = [i for log in logs for e in log if e["step"] > step for i in e["index"]]
    assert all(e["step"] <= step for log in logs[new[0] :] for e in log)  # logs of ranks gone: cut back
    assert len(before) == old[0] * step * BATCH and len(before) == len(set(before))
    steps_after = {sum(1 for e in log if e["step"] > step) for log in logs[: new[0]]}
    assert len(steps_after) == 1  # every rank the same number of steps (DDP never waits on a missing one)
    left, slots = FRAMES - len(before), new[0] * new[1]
    ledger = Counter(before + after)
    if uneven == "pad":
        assert len(after) == slots * math.ceil(left / slots)
        assert set(ledger) == set(range(FRAMES))  # no frame lost
        assert sum(ledger.values()) - FRAMES == len(after) - left < slots  # repeats: the padding, exactly
        assert not set(before) & set(after)
    else:
        assert len(after) == slots * (left // slots)
        assert max(ledger.values()) == 1  # no frame twice
        assert FRAMES - len(ledger) == left - len(after) < slots  # drops: the trim, exactly
