"""How train-lerobot reaches into lerobot 0.6's ``train``: its config parser, its accelerator, its dataset call.

Nothing here assigns to a lerobot or accelerate module or class (``tests/tools/test_train_lerobot.py`` checks
the package source for that): the config is parsed by lerobot's own ``parser.wrap``, the accelerator is an
instance of a subclass handed to ``train(cfg, accelerator=...)``, and the dataset factory is a name in the
global namespace of a private copy of ``train``'s function (0.6's ``train`` has no dataset argument).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

from lerobot_wds.tools.train_lerobot.errors import TrainLerobotError

# data_loader, accelerator, device_placement -> our loader for lerobot's DataLoader, or None for any other
RankLoaderFor = Callable[[Any, Any, Any], Any]

DATASETS_NAME = "make_train_eval_datasets"  # the name lerobot_train.train calls to build its datasets


def parse_config() -> Any:
    """lerobot-train's ``TrainPipelineConfig`` from ``sys.argv``, parsed as ``lerobot-train`` parses it.

    Raises:
        TrainLerobotError: the flags do not parse (lerobot has printed its message).
    """
    from lerobot.configs import parser
    from lerobot.configs.train import TrainPipelineConfig
    from lerobot.scripts import lerobot_train  # noqa: F401 - its imports register the policy and env types

    def take(cfg: Any) -> Any:
        return cfg

    take.__annotations__ = {"cfg": TrainPipelineConfig}  # parser.wrap reads the config class from it
    try:
        return parser.wrap()(take)()
    except SystemExit as e:  # lerobot's parser printed why and exits 1; --help exits 0
        if e.code in (0, None):
            raise
        raise TrainLerobotError("lerobot-train's flags do not parse (lerobot's message is above)") from None


def make_accelerator(cfg: Any, rank_loader: RankLoaderFor) -> Any:
    """The Accelerator lerobot's ``train`` would build for ``cfg``, whose data loader preparation asks
    ``rank_loader`` first (lerobot 0.6.1's options: no lr-scheduler stepping per process, unused parameters
    found, mixed precision from the policy's ``dtype`` or ``use_amp``, CPU when the policy's device is)."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    class WdsAccelerator(Accelerator):
        def prepare_data_loader(self, data_loader: Any, device_placement: Any = None, **kwargs: Any) -> Any:
            ours = rank_loader(data_loader, self, device_placement)
            if ours is not None:
                return ours
            return super().prepare_data_loader(data_loader, device_placement=device_placement, **kwargs)

    active = cfg.trainable_config
    dtype = getattr(active, "dtype", None)
    precision = (
        {"bfloat16": "bf16", "float16": "fp16", "float32": "no"}.get(dtype) if isinstance(dtype, str) else None
    )
    if not hasattr(active, "dtype") and getattr(active, "use_amp", False):
        autocast = torch.get_autocast_dtype(torch.device(active.device).type)
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}[autocast]
    return WdsAccelerator(
        step_scheduler_with_optimizer=False,
        mixed_precision=precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        cpu=active.device == "cpu",
    )


def train_function(make_datasets: Callable[[Any], Any]) -> Callable[..., Any]:
    """lerobot's ``train(cfg, accelerator)``, undecorated, calling ``make_datasets`` for its datasets.

    A new function object over ``train``'s code whose globals are a copy of its module's with
    :data:`DATASETS_NAME` bound to ``make_datasets``; lerobot's module and its ``train`` are left as they are.
    """
    from lerobot.scripts import lerobot_train

    inner = inspect.unwrap(lerobot_train.train)
    if DATASETS_NAME not in inner.__code__.co_names:
        raise TrainLerobotError(
            f"lerobot's train does not call {DATASETS_NAME}; train-lerobot supports lerobot 0.6.x"
        )
    namespace = {**inner.__globals__, DATASETS_NAME: make_datasets}
    fn = types.FunctionType(inner.__code__, namespace, inner.__name__, inner.__defaults__, inner.__closure__)
    fn.__kwdefaults__ = inner.__kwdefaults__
    return fn
