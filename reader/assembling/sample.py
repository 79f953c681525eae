"""Builds one frame sample exactly like ``LeRobotDataset.__getitem__`` (lerobot 0.6.1 ``DatasetReader.get_item``).

Keys in lerobot's order: cameras, then the row's columns (windowed ones replaced by their [T, ...] stacks),
then ``<key>_is_pad`` masks in ``delta_timestamps`` order, then ``task``. A camera with a one-frame query is
[C,H,W] (lerobot squeezes the time axis), otherwise [T,C,H,W]; images are float32 in [0,1] computed as
``uint8 / 255.0`` (lerobot's arithmetic, bit-exact) or uint8 with ``return_uint8``. ``image_transforms``
(lerobot's semantics) is then called once per camera on that tensor, window included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lerobot_wds.reader.decoding.decode import UINT8_SCALE
from lerobot_wds.reader.decoding.frames import FramePool
from lerobot_wds.reader.errors import ShardFormatError
from lerobot_wds.reader.parsing.episode import Episode
from lerobot_wds.reader.scheduling.windows import query_positions

if TYPE_CHECKING:
    from lerobot_wds.reader.scheduling.pool import Anchor


@dataclass(frozen=True)
class SampleSpec:
    """What a sample holds: cameras, windows per key (frame offsets), task names, image dtype and transform."""

    camera_keys: tuple[str, ...]
    deltas: Mapping[str, tuple[int, ...]]
    tasks: Mapping[int, str]
    return_uint8: bool = False
    image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None


def to_output_images(frames: np.ndarray, return_uint8: bool) -> torch.Tensor:
    """uint8 frames -> lerobot's output: uint8 with ``return_uint8``, else float32 ``x / 255``.

    lerobot computes ``(uint8_tensor / 255.0).type(torch.float32)``: a correctly rounded float32 division,
    which numpy's float32 division reproduces bit for bit (a test checks all 256 values) without torch's
    thread pool.
    """
    if return_uint8:
        return torch.from_numpy(frames)
    return torch.from_numpy(frames.astype(np.float32) / UINT8_SCALE)


def camera_positions(spec: SampleSpec, cam: str, frame: int, windows: Mapping[str, list[int]]) -> list[int]:
    """Returns the episode frame positions a camera shows in a sample (its window, or just the anchor)."""
    return windows.get(cam, [frame])


def sample_without_images(
    episode: Episode, frame: int, spec: SampleSpec
) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Returns a sample's windows (clamped positions per key) and every key of it except the cameras."""
    length = episode.length
    pads: dict[str, torch.Tensor] = {}
    windows: dict[str, list[int]] = {}
    for key, deltas in spec.deltas.items():
        positions, pad = query_positions(frame, length, deltas)
        windows[key] = positions
        pads[f"{key}_is_pad"] = torch.BoolTensor(pad)
    item: dict[str, Any] = {}
    for name, column in episode.columns.items():
        if name in windows:
            if not isinstance(column, torch.Tensor):
                raise ShardFormatError(f"{episode.where}: column {name!r} is not numeric and cannot be windowed")
            item[name] = column[windows[name]]
        else:
            value = column[frame]
            item[name] = value.clone() if isinstance(value, torch.Tensor) else value
    item.update(pads)
    task_index = int(item["task_index"])
    if task_index not in spec.tasks:
        raise ShardFormatError(
            f"{episode.where}: frame {frame} has task_index {task_index}, "
            f"meta/tasks.parquet has {sorted(spec.tasks)}"
        )
    item["task"] = spec.tasks[task_index]
    return windows, item


def build_sample(anchor: Anchor, spec: SampleSpec, frames_pool: FramePool) -> dict[str, Any]:
    """Returns the sample of ``anchor`` (its episode at its anchor frame)."""
    frame = anchor.frame
    windows, rest = sample_without_images(anchor.episode, frame, spec)
    item: dict[str, Any] = {}
    for cam in spec.camera_keys:
        positions = camera_positions(spec, cam, frame, windows)
        frames = frames_pool.get(anchor.visit, cam, positions, anchor.needs.get(cam, ()))
        image = to_output_images(frames.squeeze(0) if frames.shape[0] == 1 else frames, spec.return_uint8)
        item[cam] = spec.image_transforms(image) if spec.image_transforms is not None else image
    item.update(rest)
    return item
