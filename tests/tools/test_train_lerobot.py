"""``train-lerobot``'s lerobot-free parts: the rank loader lerobot's loop iterates, its resume, the CLI's checks.

The training itself runs against lerobot 0.6.1 in test_conformance_train.py (CI's conformance environment).
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lerobot_wds
from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.testing.shards import RootSpec
from lerobot_wds.tools.train_lerobot.cli import split_args
from lerobot_wds.tools.train_lerobot.errors import TrainLerobotError
from lerobot_wds.tools.train_lerobot.loader import (
    BatchSampleLog,
    LoaderOptions,
    RankLoader,
    StateSaving,
    batches_per_epoch,
    resume_position,
)
from lerobot_wds.tools.train_lerobot.sidecar import Shape

SPEC = RootSpec()
FRAMES = sum(SPEC.lengths)  # 78


def take(loader: RankLoader, steps: int) -> list[list[tuple[int, int]]]:
    """The (episode_index, frame_index) pairs of ``steps`` batches, drawn as lerobot's ``cycle`` draws them."""
    out: list[list[tuple[int, int]]] = []
    it = iter(loader)
    while len(out) < steps:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        out.append(list(zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True)))
    return out


def test_batches_per_epoch_and_resume_position(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(str(wds_root), batch_size=4)
    assert batches_per_epoch(ds, 0) == 20  # one reader: 78 frames -> 19 batches of 4 and one of 2
    assert batches_per_epoch(ds, 2) == 20  # two readers of 39 frames: 10 batches each
    assert batches_per_epoch(ds, 3) == 21  # three of 26: 7 each
    assert (
        resume_position(0, 20) == (0, 0)
        and resume_position(27, 20) == (1, 7)
        and resume_position(40, 20) == (2, 0)
    )
    with pytest.raises(ValueError, match="must build batches"):
        batches_per_epoch(LeRobotWdsDataset(str(wds_root)), 0)


@pytest.mark.parametrize("workers", [0, 2])
def test_rank_loader_epochs_and_exact_resume(wds_root: Path, tmp_path: Path, workers: int) -> None:
    def loader(start: int = 0, log: BatchSampleLog | None = None) -> RankLoader:
        ds = LeRobotWdsDataset(str(wds_root), batch_size=4, seed=9)
        return RankLoader(ds, LoaderOptions(num_workers=workers), start_step=start, sample_log=log)

    ref = loader(log=BatchSampleLog(tmp_path / "ref-{rank}.jsonl", 0))
    full = take(ref, 46)  # 2 epochs of 20 and 6 steps of the third
    epoch0 = [p for b in full[:20] for p in b]
    assert sorted(epoch0) == sorted({(e, k) for e, n in enumerate(SPEC.lengths) for k in range(n)})
    assert full[20:40] != full[:20]  # the next epoch is reshuffled
    assert (tmp_path / "ref-0.jsonl").read_text().count("\n") >= 46
    for start in (7, 20, 33):
        assert take(loader(start), 46 - start) == full[start:], f"resumed at step {start}"


def _rank_loaders(root: Path, states: Path, shape: Shape, start: int, due: int) -> list[RankLoader]:
    """One rank loader per rank of ``shape`` (the ranks of a job, run one after the other in this process)."""
    out = []
    for rank in range(shape.world_size):
        ds = LeRobotWdsDataset(
            str(root), batch_size=shape.batch_size, seed=4, rank=rank, world_size=shape.world_size
        )
        saving = StateSaving(states, rank, shape, lambda step: step == due)
        out.append(RankLoader(ds, LoaderOptions(num_workers=shape.num_workers), start_step=start, states=saving))
    return out


@pytest.mark.parametrize("old, new", [((2, 2), (3, 1)), ((1, 0), (2, 2)), ((2, 1), (2, 1))])
def test_rank_loader_resumes_from_saved_states_on_another_shape_exactly_once(
    wds_root: Path, tmp_path: Path, old: tuple[int, int], new: tuple[int, int]
) -> None:
    states = tmp_path / "lerobot_wds_state"
    before = []
    for rl in _rank_loaders(wds_root, states, Shape(*old, 3), 0, due=4):
        before += [p for batch in take(rl, 5) for p in batch]  # the states of step 4 are saved; step 5 is lost
    assert sorted(p.name for p in (states / "step-000000004").iterdir()) == [f"rank-{r}.pt" for r in range(old[0])]
    lost = len(before) - old[0] * 4 * 3
    before = before[:0] + [p for i, p in enumerate(before) if i % 15 < 12]  # what the checkpoint of step 4 saw
    assert lost == old[0] * 3 and len(before) == len(set(before))
    after, per_rank = [], set()
    for rl in _rank_loaders(wds_root, states, Shape(*new, 3), 4, due=-1):
        assert rl.resumed is not None and ("re-planned" in rl.resumed) == (old != new)
        got = [p for batch in iter(rl) for p in batch_pairs(batch)]
        per_rank.add(len(got))
        after += got
    every = {(e, k) for e, n in enumerate(SPEC.lengths) for k in range(n)}
    assert len(per_rank) == 1 and set(before) | set(after) == every and not set(before) & set(after)
    slots = new[0] * max(1, new[1])
    assert len(after) - len(set(after)) < slots  # repeats: only the padding of the re-planned rest


def batch_pairs(batch: dict) -> list[tuple[int, int]]:
    return list(zip(batch["episode_index"].tolist(), batch["frame_index"].tolist(), strict=True))


def test_rank_loader_refuses_another_batch_size_naming_both(wds_root: Path, tmp_path: Path) -> None:
    states = tmp_path / "s"
    take(_rank_loaders(wds_root, states, Shape(1, 0, 3), 0, due=2)[0], 2)
    with pytest.raises(
        TrainLerobotError, match="written with batch size 3, this run has 4: resume with --batch_size=3"
    ):
        _rank_loaders(wds_root, states, Shape(1, 0, 4), 2, due=-1)


def test_rank_loader_moves_batches_to_the_device(wds_root: Path) -> None:
    ds = LeRobotWdsDataset(str(wds_root), batch_size=3, shuffle=False)
    rl = RankLoader(ds, LoaderOptions(), device=torch.device("cpu"))
    batch = next(iter(rl))
    assert batch["index"].tolist() == [0, 1, 2] and batch["observation.images.front"].shape == (3, 3, 48, 64)
    assert not isinstance(rl, torch.utils.data.DataLoader)  # accelerate's prepare wraps only DataLoaders
    assert len(rl) == 26


def test_split_args_takes_our_flag_out() -> None:
    assert split_args(["--policy.type=act", "--wds.sample_log=/x/{rank}.jsonl", "--steps=3"]) == (
        ["--policy.type=act", "--steps=3"],
        "/x/{rank}.jsonl",
    )
    assert split_args(["--wds.sample_log", "a.jsonl"]) == ([], "a.jsonl")
    with pytest.raises(ValueError, match="needs a path"):
        split_args(["--wds.sample_log"])


@pytest.mark.skipif(importlib.util.find_spec("lerobot") is not None, reason="lerobot is installed here")
def test_without_lerobot_one_line_and_exit_2(wds_root: Path) -> None:
    cmd = [sys.executable, "-m", "lerobot_wds.tools.cli", "train-lerobot", str(wds_root), "--policy.type=act"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        'lerobot-wds train-lerobot: lerobot is not installed; install it with: pip install "lerobot-wds[lerobot]" '
        "(lerobot 0.6.x with its training extra, Python >= 3.12)"
    ]


PACKAGE = Path(lerobot_wds.__file__).parent
FOREIGN = ("lerobot", "accelerate")  # packages whose modules and classes the package must never change


def foreign_assignments(source: str) -> list[str]:
    """``name.attr = ...`` / ``setattr(name, ...)`` / ``del name.attr`` on a name imported from lerobot or
    accelerate (a module or a class of theirs), as ``line: text``."""
    tree = ast.parse(source)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in FOREIGN}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FOREIGN:
            names |= {a.asname or a.name for a in node.names}

    def root(expr: ast.expr) -> str | None:
        while isinstance(expr, (ast.Attribute, ast.Subscript)):
            expr = expr.value
        return expr.id if isinstance(expr, ast.Name) else None

    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
            and node.args
        ):
            targets = [ast.Attribute(value=node.args[0], attr="?")]
        flat = [t for target in targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        if any(isinstance(t, ast.Attribute) and root(t) in names for t in flat):
            found.append(f"{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_foreign_assignment_check_finds_patching() -> None:
    patched = (
        "import accelerate\nfrom lerobot.scripts import lerobot_train as lt\n"
        "lt.make_train_eval_datasets = f\naccelerate.Accelerator, x = A, 1\nsetattr(accelerate, 'x', 1)\n"
        "mine.attr = 1\n"
    )
    assert foreign_assignments(patched) == [
        "3: lt.make_train_eval_datasets = f",
        "4: accelerate.Accelerator, x = (A, 1)",
        "5: setattr(accelerate, 'x', 1)",
    ]


def test_no_module_assigns_to_lerobot_or_accelerate() -> None:
    found = {
        str(path.relative_to(PACKAGE)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if not any(part.startswith(".") for part in path.relative_to(PACKAGE).parts)
        and (hits := foreign_assignments(path.read_text()))
    }
    assert found == {}
