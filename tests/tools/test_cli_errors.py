"""Bad input reaches the user as one line and exit 1 or 2, never a traceback; every domain error has one root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lerobot_wds

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]


def test_every_domain_error_derives_from_the_root() -> None:
    from lerobot_wds.convert.errors import (
        ConfigError,
        ConvertError,
        EpisodeError,
        FinalizeError,
        PlanError,
        SinkError,
        StagingError,
        TarWriteError,
    )
    from lerobot_wds.convert.mp4 import Mp4Error
    from lerobot_wds.convert.source import SourceError
    from lerobot_wds.core.errors import FormatError, RetryError, ShardReadError
    from lerobot_wds.reader.errors import FrameDecodeError, IntegrityError, ShardFormatError
    from lerobot_wds.tools.errors import BenchError

    errors = [
        ConfigError,
        EpisodeError,
        FinalizeError,
        Mp4Error,
        ConvertError,
        PlanError,
        RetryError,
        SinkError,
        SourceError,
        StagingError,
        TarWriteError,
        FrameDecodeError,
        IntegrityError,
        ShardFormatError,
        ShardReadError,
        FormatError,
        BenchError,
    ]
    assert [e.__name__ for e in errors if not issubclass(e, lerobot_wds.LeRobotWdsError)] == []


@pytest.mark.parametrize(
    "args",
    [
        ["convert", "http://127.0.0.1:9/ds", "{tmp}/out", "--upload-attempts", "1"],  # nothing listens on port 9
        ["convert", "{tmp}/no-such-dataset", "{tmp}/out"],
        ["bench", "{tmp}/no-such-root", "--out", "{tmp}/bench", "--num-workers", "0"],
        ["train", "{tmp}/no-such-root", "--dummy"],
        ["inspect", "{tmp}/no-such-root"],
        ["verify", "{tmp}/no-such-root"],
        ["finalize", "{tmp}/no-such-root"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_bad_input_is_one_line_without_traceback(args: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [*CLI, *(a.replace("{tmp}", str(tmp_path)) for a in args)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode in (1, 2), (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("running ")]
    said = lines + [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert said and any("no-such" in ln or "127.0.0.1:9" in ln for ln in said), said
