"""Temporal windows exactly as LeRobotDataset builds them: delta timestamps, presets, clamping and padding.

Mirrors lerobot 0.6.1 (``feature_utils.check_delta_timestamps`` / ``get_delta_indices`` and
``DatasetReader._get_query_indices``): a delta in seconds must be a multiple of 1/fps within ``tolerance_s``,
becomes ``round(delta * fps)`` frames, and a window position outside the episode is clamped to the episode's
first or last frame and flagged in ``<key>_is_pad``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, get_args

from lerobot_wds.reader.errors import OptionError

Preset = Literal["single", "sarm"]

# lerobot.rewards.sarm.configuration_sarm.SARMConfig().observation_delta_indices (n_obs_steps=8, frame_gap=30,
# max_rewind_steps=4): 9 bidirectional steps centred on the anchor, then 4 rewind steps.
SARM_DELTA_INDICES: tuple[int, ...] = (-120, -90, -60, -30, 0, 30, 60, 90, 120, -30, -60, -90, -120)
SARM_STATE_KEY = "observation.state"


def preset_delta_timestamps(
    preset: Preset, camera_keys: Sequence[str], fps: float
) -> dict[str, list[float]] | None:
    """Returns the ``delta_timestamps`` of a preset: None for "single", every camera + state for "sarm"."""
    if preset == "single":
        return None
    if preset == "sarm":
        deltas = [d / fps for d in SARM_DELTA_INDICES]
        return {key: list(deltas) for key in [*camera_keys, SARM_STATE_KEY]}
    raise OptionError(f"preset={preset!r} is not a preset; expected one of {list(get_args(Preset))}")


def check_delta_timestamps(
    delta_timestamps: Mapping[str, Sequence[float]], fps: float, tolerance_s: float
) -> None:
    """Raises OptionError naming the keys and deltas that are not multiples of 1/fps within ``tolerance_s``."""
    bad = {
        key: [ts for ts in deltas if abs(ts * fps - round(ts * fps)) / fps > tolerance_s]
        for key, deltas in delta_timestamps.items()
    }
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        raise OptionError(f"delta_timestamps not multiples of 1/{fps} s within tolerance {tolerance_s} s: {bad}")


def delta_indices(
    delta_timestamps: Mapping[str, Sequence[float]], fps: float, available_keys: Sequence[str], tolerance_s: float
) -> dict[str, tuple[int, ...]]:
    """Validates ``delta_timestamps`` and converts them to frame offsets per key."""
    unknown = sorted(set(delta_timestamps) - set(available_keys))
    if unknown:
        raise OptionError(
            f"delta_timestamps keys {unknown} are not features of this root; use some of {sorted(available_keys)}"
        )
    empty = sorted(k for k, v in delta_timestamps.items() if len(v) == 0)
    if empty:
        raise OptionError(f"delta_timestamps for {empty} are empty; give at least one delta")
    check_delta_timestamps(delta_timestamps, fps, tolerance_s)
    return {key: tuple(round(d * fps) for d in deltas) for key, deltas in delta_timestamps.items()}


def clamp_window(frame: int, length: int, deltas: Sequence[int]) -> list[int]:
    """The episode frame positions of a window around ``frame``, clamped to the episode (lerobot's clamping)."""
    return [min(length - 1, max(0, frame + d)) for d in deltas]


def query_positions(frame: int, length: int, deltas: Sequence[int]) -> tuple[list[int], list[bool]]:
    """Returns the clamped episode frame positions of a window around ``frame`` and its padding mask."""
    positions = clamp_window(frame, length, deltas)
    pad = [(frame + d < 0) or (frame + d >= length) for d in deltas]
    return positions, pad
