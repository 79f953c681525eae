"""``lerobot-wds train-lerobot ROOT [lerobot-train's flags]``: lerobot-train on a converted root.

    lerobot-wds train-lerobot s3://bucket/wds --policy.type=act --batch_size=8 --steps=100000 \\
        --output_dir=outputs/act --policy.push_to_hub=false
    accelerate launch --num_processes 8 -m lerobot_wds.tools.cli train-lerobot ROOT ...   # multi-GPU
    lerobot-wds train-lerobot ROOT --resume=true \
        --config_path=OUT/checkpoints/last/pretrained_model/train_config.json

Every flag after ROOT is lerobot-train's (see :mod:`pipeline` for what reaches lerobot's ``train``), except
``--wds.sample_log=PATH``: append each batch's ``[episode_index, frame_index]`` pairs, per step, to PATH
(``{rank}`` in PATH is replaced by the rank). lerobot is an optional extra (``pip install
"lerobot-wds[lerobot]"``, lerobot 0.6.x on Python >= 3.12); without it the command says so and exits 2.
Exit codes: 0 trained; 1 training started and failed (the traceback, then one line on stderr); 2 could not
start (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
import traceback
from typing import Any

log = logging.getLogger(__name__)

SUPPORTED = "0.6"  # lerobot minor versions whose lerobot_train loop this tool was written against and tested
SAMPLE_LOG_FLAG = "--wds.sample_log"


def lerobot_problem() -> str | None:
    """What keeps lerobot's training from running here (not installed, unsupported version), or None."""
    try:
        version = importlib.metadata.version("lerobot")
    except importlib.metadata.PackageNotFoundError:
        return (
            'lerobot is not installed; install it with: pip install "lerobot-wds[lerobot]" '
            f"(lerobot {SUPPORTED}.x with its training extra, Python >= 3.12)"
        )
    if ".".join(version.split(".")[:2]) != SUPPORTED:
        return f"lerobot {version} is installed; train-lerobot supports lerobot {SUPPORTED}.x"
    try:
        import accelerate  # noqa: F401
    except ImportError:
        return 'accelerate is not installed; install it with: pip install "lerobot[training]"'
    return None


def split_args(rest: list[str]) -> tuple[list[str], str | None]:
    """Separates ``--wds.sample_log=PATH`` (ours) from lerobot-train's flags."""
    sample_log = None
    out: list[str] = []
    it = iter(rest)
    for arg in it:
        if arg.startswith(SAMPLE_LOG_FLAG + "="):
            sample_log = arg.split("=", 1)[1]
        elif arg == SAMPLE_LOG_FLAG:
            sample_log = next(it, None)
            if sample_log is None:
                raise ValueError(f"{SAMPLE_LOG_FLAG} needs a path")
        else:
            out.append(arg)
    return out, sample_log


def run(args: argparse.Namespace) -> int:
    problem = lerobot_problem()
    if problem is not None:
        print(f"lerobot-wds train-lerobot: {problem}", file=sys.stderr)
        return 2
    from lerobot_wds.core.errors import LeRobotWdsError
    from lerobot_wds.tools.train_lerobot.errors import TrainingFailed
    from lerobot_wds.tools.train_lerobot.pipeline import run_train

    try:
        flags, sample_log = split_args(list(args.lerobot_args))
        run_train(args.root, flags, sample_log=sample_log)
    except TrainingFailed as e:  # it had started: what broke, with its traceback, then one line
        cause = e.__cause__ if e.__cause__ is not None else e
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
        print(f"lerobot-wds train-lerobot: {e}", file=sys.stderr)
        return 1
    except (LeRobotWdsError, ValueError, OSError) as e:
        log.debug("train-lerobot could not start", exc_info=True)
        print(f"lerobot-wds train-lerobot: error: {e}", file=sys.stderr)
        return 2
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train-lerobot",
        help="train a lerobot policy with lerobot-train's pipeline on a converted root",
        description="Run lerobot-train on a converted root: every flag after ROOT is lerobot-train's "
        "(--policy.type=act --batch_size=8 ...), except --wds.sample_log=PATH, which appends each batch's "
        "[episode_index, frame_index] pairs to PATH ({rank} in PATH becomes the rank). Needs the lerobot extra "
        "(pip install 'lerobot-wds[lerobot]'). Exit codes: 0 trained, 1 training started and failed, 2 could "
        "not start.",
    )
    p.add_argument("root", help="converted root: local path or fsspec URL (s3://, hf://, http://...)")
    p.add_argument("lerobot_args", nargs=argparse.REMAINDER, help="lerobot-train's flags (--policy.type=act ...)")
    p.set_defaults(func=run)
