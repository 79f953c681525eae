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


def test_format_and_packages_import_without_torch() -> None:
    """The format contract and every package ``__init__`` are cheap: torch loads only with a name that needs it."""
    code = (
        "import sys; import lerobot_wds, lerobot_wds.reader, lerobot_wds.convert, lerobot_wds.tools, "
        "lerobot_wds.testing, lerobot_wds.core.format; print('torch' in sys.modules); "
        "lerobot_wds.reader.DecodeConfig; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["False", "True"]


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


WHEEL_PACKAGES = {
    "lerobot_wds",
    "lerobot_wds/convert",
    "lerobot_wds/convert/mp4",
    "lerobot_wds/convert/source",
    "lerobot_wds/core",
    "lerobot_wds/reader",
    "lerobot_wds/reader/assembling",
    "lerobot_wds/reader/decoding",
    "lerobot_wds/reader/fetching",
    "lerobot_wds/reader/parsing",
    "lerobot_wds/reader/planning",
    "lerobot_wds/reader/scheduling",
    "lerobot_wds/testing",
    "lerobot_wds/tools",
    "lerobot_wds/tools/bench",
    "lerobot_wds/tools/bench/peers",
    "lerobot_wds/tools/bench/profiles",
    "lerobot_wds/tools/train",
    "lerobot_wds/tools/train_lerobot",
    "lerobot_wds/tools/verify",
}


def test_wheel_contents_match_the_readme(tmp_path) -> None:
    """The wheel ships exactly the package folders (no tests, no slurm scripts, no benchmark reports or
    plots), py.typed, and the layout section of docs/design.md lists every one of them."""
    import shutil
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    had_build = (root / "build").exists()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    if not had_build:  # setuptools stages the build in the source tree
        shutil.rmtree(root / "build", ignore_errors=True)
    (wheel,) = tmp_path.glob("lerobot_wds-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    folders = {n.rsplit("/", 1)[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert folders == WHEEL_PACKAGES
    assert "lerobot_wds/py.typed" in names
    assert all(n.endswith(".py") or n == "lerobot_wds/py.typed" for n in names if n.startswith("lerobot_wds/"))
    design = (root / "docs" / "design.md").read_text()
    layout = design[design.index("## Layout") :]
    missing = sorted(f for f in WHEEL_PACKAGES if f"`{f}/`" not in layout)
    assert not missing, f"docs/design.md's Layout section does not list {missing}"


def test_readme_is_short_and_its_files_exist() -> None:
    """README.md stays a user's page (at most 300 lines); every repository file it names exists."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    assert readme.count("\n") <= 300
    named = set(re.findall(r"`((?:[\w.-]+/)*[\w.-]+\.(?:md|py|txt|sbatch))`", readme))
    assert {"docs/design.md", "docs/reliability.md", "BENCHMARKS.md", "CONTRIBUTING.md"} <= named
    missing = sorted(n for n in named if not (root / n).exists())
    assert not missing, f"README.md names files that are not in the repository: {missing}"
