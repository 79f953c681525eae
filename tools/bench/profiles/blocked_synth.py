"""Makes a benchmark dataset recorded task by task, with lerobot's own writer.

``make_lerobot_synth.py`` (the shared generator) assigns its six tasks round-robin (``TASKS[ep % 6]``), so
neighbouring episodes always differ in task and a reader that serves runs of neighbours looks *more* diverse
than random sampling. Real LeRobot datasets are recorded task by task, session by session. This wrapper runs
the shared generator (same frames, same writer, same flags) with its task list replaced by one entry per episode,
so that episode ``ep`` of ``n`` gets ``TASKS[ep * len(TASKS) // n]``.

Run it with lerobot's Python (it imports lerobot), e.g.::

    /work/venv-lerobot/bin/python tools/bench/profiles/blocked_synth.py \
        --synth /work/shared/tools/make_lerobot_synth.py --root /work/data/p240/src --episodes 40
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def blocked_task_index(episode: int, episodes: int, tasks: int) -> int:
    """Returns the task of ``episode`` when ``episodes`` are recorded in ``tasks`` equal consecutive blocks."""
    return episode * tasks // episodes


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_lerobot_synth", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the shared generator {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Parses ``--synth`` and ``--episodes``, relabels the generator's tasks in blocks, and runs it."""
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--synth", type=Path, required=True, help="path of make_lerobot_synth.py")
    ap.add_argument("--episodes", type=int, default=40)
    args, rest = ap.parse_known_args()
    synth = _load(args.synth)
    # the generator labels episode ep with TASKS[ep % len(TASKS)]: one entry per episode makes that the block's
    tasks = list(synth.TASKS)
    synth.__dict__["TASKS"] = [
        tasks[blocked_task_index(ep, args.episodes, len(tasks))] for ep in range(args.episodes)
    ]
    sys.argv = [str(args.synth), "--episodes", str(args.episodes), *rest]
    synth.main()


if __name__ == "__main__":
    main()
