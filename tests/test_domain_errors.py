"""The package (its tests aside) raises its own errors: no bare ``RuntimeError`` / ``Exception``; each a
LeRobotWdsError."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lerobot_wds
from lerobot_wds.core.errors import LeRobotWdsError
from lerobot_wds.tools.errors import BenchError, CheckpointError, DemoError
from lerobot_wds.tools.train import checkpoint as ckpt
from lerobot_wds.tools.train_lerobot.errors import TrainingFailed, TrainLerobotError

PACKAGE = Path(lerobot_wds.__file__).parent
GENERIC = {"RuntimeError", "Exception"}


def generic_raises(source: str) -> list[str]:
    """``raise RuntimeError(...)`` / ``raise Exception(...)`` in ``source``, as ``line: text``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        exc = node.exc if isinstance(node, ast.Raise) else None
        name = exc.func if isinstance(exc, ast.Call) else exc
        if isinstance(name, ast.Name) and name.id in GENERIC:
            found.append(f"{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_generic_raise_check_finds_one() -> None:
    assert generic_raises("def f():\n    raise RuntimeError('x')\nraise ValueError('y')\n") == [
        "2: raise RuntimeError('x')"
    ]


def test_no_module_raises_a_generic_error() -> None:
    found = {
        str(p.relative_to(PACKAGE)): hits
        for p in sorted(PACKAGE.rglob("*.py"))
        if not any(part.startswith(".") or part == "tests" for part in p.relative_to(PACKAGE).parts)
        and (hits := generic_raises(p.read_text()))
    }
    assert found == {}


def test_tool_errors_are_domain_errors() -> None:
    for cls in (BenchError, CheckpointError, DemoError, TrainingFailed, TrainLerobotError):
        assert issubclass(cls, LeRobotWdsError), cls


def test_a_checkpoint_with_a_missing_part_is_a_checkpoint_error(tmp_path: Path) -> None:
    ckpt.write_part(tmp_path, 4, 0, {"x": 1}, {"step": 4})
    with pytest.raises(CheckpointError, match=r"step-00000004: parts missing \['rank-1.pt'\]"):
        ckpt.publish(tmp_path, 4, world_size=2, keep=2)
