"""Benchmark scenarios as data: the window modes and the frozen configuration of one benchmark run.

A mode is a named list of window offsets (in frames) applied to every camera, and optionally to the state, so
both loaders (ours and LeRobotDataset) receive the very same ``delta_timestamps``. The CLI builds a
:class:`BenchConfig` and keeps no defaults of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from lerobot_wds.core.redact import redact_url
from lerobot_wds.reader.scheduling.windows import SARM_DELTA_INDICES, SARM_STATE_KEY

Loader = Literal["lerobot-wds", "lerobot", "lerobot-lancedb", "lerobot-streaming"]
Batching = Literal["dataset", "dataloader"]
STATE_KEY = SARM_STATE_KEY


@dataclass(frozen=True)
class WindowMode:
    """Offsets of a window in frames (``None`` = no window: one frame per camera) or in seconds.

    Attributes:
        name: mode name used on the command line and in records.
        frame_offsets: offsets in frames at the dataset's fps (exclusive with ``second_offsets``).
        second_offsets: offsets in seconds (must be multiples of 1/fps).
        with_state: also window ``observation.state``.
    """

    name: str
    frame_offsets: tuple[int, ...] | None = None
    second_offsets: tuple[float, ...] | None = None
    with_state: bool = False

    def __post_init__(self) -> None:
        if self.frame_offsets is not None and self.second_offsets is not None:
            raise ValueError(f"mode {self.name!r}: give frame_offsets or second_offsets, not both")

    def delta_timestamps(self, camera_keys: Sequence[str], fps: float) -> dict[str, list[float]] | None:
        """Returns lerobot's ``delta_timestamps`` for this mode, or None for single frames."""
        if self.frame_offsets is not None:
            deltas = [d / fps for d in self.frame_offsets]
        elif self.second_offsets is not None:
            deltas = list(self.second_offsets)
        else:
            return None
        keys = [*camera_keys, STATE_KEY] if self.with_state else list(camera_keys)
        return {key: list(deltas) for key in keys}

    def window_length(self) -> int:
        """Frames per camera in one sample."""
        offsets = self.frame_offsets if self.frame_offsets is not None else self.second_offsets
        return 1 if offsets is None else len(offsets)


MODES: dict[str, WindowMode] = {
    m.name: m
    for m in (
        WindowMode("single"),
        # SARM: 9 bidirectional steps 30 frames apart + 4 rewind steps, cameras and state (lerobot's preset)
        WindowMode("sarm", frame_offsets=SARM_DELTA_INDICES, with_state=True),
        # 8 steps 1 s apart ending at the anchor, cameras and state
        WindowMode("window8x1s", second_offsets=tuple(float(s) for s in range(-7, 1)), with_state=True),
    )
}


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run.

    Attributes:
        source: what the loader reads: a converted root (``lerobot-wds``) or a LeRobot v3 root (``lerobot``).
        loader: "lerobot-wds" (ours), "lerobot" (LeRobotDataset, the baseline), "lerobot-lancedb" (the
            Lance peer, on a ``lerobot-lance-convert`` root) or "lerobot-streaming" (lerobot's
            ``StreamingLeRobotDataset`` on the LeRobot v3 root).
        mode: a key of :data:`MODES`.
        batch_size, num_workers: DataLoader settings, identical for both loaders.
        num_batches: batches measured after ``warmup`` batches.
        warmup: batches consumed before measuring throughput (the first batch latency is always measured).
        return_uint8: images as uint8 instead of float32 (both loaders support it).
        source_label: free label for reports (e.g. "local", "http-50ms-200MBs").
        emulate_latency_ms / emulate_bandwidth_mb_s: serve ``source`` on loopback with this first-byte latency /
            per-response bandwidth and read it over HTTP (ours only: LeRobotDataset needs a local root).
        seed: shuffling seed for both loaders.
        device: where the dummy consumer moves batches.
        repo_id: repo id given to LeRobotDataset (any name; the data is read from ``source``).
        batching: ours only: "dataset" builds batches inside the pipeline (``batch_size=`` on the dataset,
            ``DataLoader(batch_size=None)``, our recommended setup); "dataloader" uses DataLoader's collate.
        active_episodes: ours only: the pool's open-episode limit (None: the dataset's default); the knob that
            trades batch mixing for decoded memory in the mixing/speed/memory sweep.
        meta_root: local root whose ``meta/episodes`` give every episode's length and task, for the mixing
            reference (None: ``source``, which holds them for ours and for LeRobot roots).
        cache_dir, cache_limit: ours only: the node-local cache (directory, bound in bytes); with it the run
            reads two whole epochs and records each (``epochs``: frames/s, remote and cached bytes, hits).
    """

    source: str
    loader: Loader = "lerobot-wds"
    mode: str = "single"
    batch_size: int = 16
    num_workers: int = 2
    num_batches: int = 50
    warmup: int = 5
    return_uint8: bool = True
    source_label: str = "local"
    emulate_latency_ms: float | None = None
    emulate_bandwidth_mb_s: float | None = None
    seed: int = 0
    device: str = "cpu"
    repo_id: str = "local/bench"
    batching: Batching = "dataset"
    active_episodes: int | None = None
    meta_root: str | None = None
    cache_dir: str | None = None
    cache_limit: int | None = None

    def __post_init__(self) -> None:
        if (self.cache_dir is None) != (self.cache_limit is None):
            raise ValueError("--cache-dir and --cache-limit go together (a cache needs its bound in bytes)")
        if self.cache_dir is not None and self.loader != "lerobot-wds":
            raise ValueError("the node-local cache is ours: give --cache-dir to lerobot-wds runs only")
        if self.active_episodes is not None and self.active_episodes < 1:
            raise ValueError(f"active_episodes must be >= 1, got {self.active_episodes}")
        if self.loader not in get_args(Loader):
            raise ValueError(f"loader={self.loader!r}; expected one of {get_args(Loader)}")
        if self.batching not in get_args(Batching):
            raise ValueError(f"batching={self.batching!r}; expected one of {get_args(Batching)}")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}; expected one of {sorted(MODES)}")
        for name in ("batch_size", "num_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "warmup"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.emulate_latency_ms is not None and self.emulate_latency_ms < 0:
            raise ValueError(f"emulate_latency_ms must be >= 0, got {self.emulate_latency_ms}")
        if self.emulate_bandwidth_mb_s is not None and self.emulate_bandwidth_mb_s <= 0:
            raise ValueError(f"emulate_bandwidth_mb_s must be > 0, got {self.emulate_bandwidth_mb_s}")
        if self.emulated and self.loader != "lerobot-wds":
            raise ValueError("emulated remote reads apply to lerobot-wds only: LeRobotDataset needs a local root")

    def describe(self) -> str:
        """One readable line naming the loader, the root and every setting that shapes the run."""
        parts = [
            f"mode {self.mode}",
            f"batch {self.batch_size}",
            f"{self.num_workers} workers",
            f"{self.num_batches} batches after {self.warmup} warm-up",
            "uint8" if self.return_uint8 else "float32",
            f"seed {self.seed}",
            f"device {self.device}",
        ]
        if self.loader == "lerobot-wds":
            parts.append(f"batching in the {self.batching}")
            if self.active_episodes is not None:
                parts.append(f"{self.active_episodes} open episodes")
            if self.cache_dir is not None:
                parts.append(f"node-local cache {self.cache_dir} of {self.cache_limit} bytes, 2 whole epochs")
        if self.emulated:
            parts.append(
                f"served over loopback HTTP ({self.emulate_latency_ms or 0:g} ms first byte, "
                f"{self.emulate_bandwidth_mb_s or 0:g} MB/s)"
            )
        return f"{self.loader} on {redact_url(self.source)} [{self.source_label}]: {', '.join(parts)}"

    @property
    def emulated(self) -> bool:
        """Whether the source is served over loopback HTTP."""
        return self.emulate_latency_ms is not None or self.emulate_bandwidth_mb_s is not None

    @property
    def window(self) -> WindowMode:
        return MODES[self.mode]
