"""Package surface: the reader never imports the converter; the CLI exposes every subcommand."""

from __future__ import annotations

import subprocess
import sys


def test_reader_does_not_import_the_converter() -> None:
    code = (
        "import sys; from lerobot_wds import LeRobotWdsDataset; import lerobot_wds.reader.dataset; "
        "print(sorted(m for m in sys.modules if m.startswith('lerobot_wds.convert')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_console_script_lists_every_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lerobot_wds.tools.cli", "--help"], check=True, capture_output=True, text=True
    ).stdout
    for name in ("convert", "finalize", "verify", "inspect", "bench", "bench-report", "demo"):
        assert f"    {name}" in out, name


def test_installed_package_has_no_bare_top_level_folders() -> None:
    import lerobot_wds
    import lerobot_wds.convert
    import lerobot_wds.reader
    import lerobot_wds.tools

    assert lerobot_wds.reader.__name__ == "lerobot_wds.reader"
    for bare in ("convert", "reader", "tools"):
        code = (
            "import importlib.util, sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
            f"print(importlib.util.find_spec({bare!r}))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/"
        ).stdout
        assert out.strip() == "None", (bare, out)
