"""Decoding primitives over in-memory mini-MP4s with torchcodec: open, GOP structure, pts-checked ranges.

Frames are selected by presentation position ``lead_in + k`` (torchcodec ``seek_mode="exact"`` indexes
frames in presentation order, so B-frame reordering cannot hand back a neighbour) and every returned pts
is checked against ``pts_offset_s + k / fps`` within half a frame. Which frames to decode, and keeping them,
is :mod:`frames`' job (the pool); which anchors need them together is :mod:`units`'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torchcodec.decoders import VideoDecoder

from lerobot_wds.reader.errors import FrameDecodeError, OptionError
from lerobot_wds.reader.parsing.episode import Episode

UINT8_SCALE = np.float32(255.0)  # lerobot's images are uint8 / 255 in float32
DEFAULT_FRAME_BYTES = 512 * 1024 * 1024  # the decoded-frame budget before the mixing target asks for more
DEFAULT_OPEN_BYTES = 256 * 1024 * 1024  # the open episodes' compressed bytes, likewise
# A worker's planned memory (decoded frames, open episodes' videos, open decoders): with the interpreter and its
# libraries (about 0.5 GB) and the batch being assembled, 2 GB of RSS per worker at 480x640 x 3 cameras.
DEFAULT_MEMORY_BYTES = 1200 * 1024 * 1024


@dataclass(frozen=True)
class DecodeConfig:
    """Budgets of one worker's decoding.

    Attributes:
        frame_cache_bytes: decoded frames alive at once (uint8 bytes), shared by the open episodes: the pool
            (:class:`frames.FramePool`) enforces it and evicts beyond it; the scheduler opens another episode
            only while the planned peak of the open ones fits (at least one is always open, whatever its size).
            None (default): ``DEFAULT_FRAME_BYTES``, grown to whatever the mixing target of open episodes
            needs at the data's frame size and window (see :mod:`mixing`); a number is a hard budget, and
            one too small for the target is said once with the numbers.
        open_episode_bytes: compressed bytes (mini-MP4s) of the episodes open at once; with
            ``frame_cache_bytes`` and the dataset's ``active_episodes`` it bounds how many episodes a batch
            can mix. None (default): ``DEFAULT_OPEN_BYTES``, or more when the mixing target of open episodes
            needs it; a number is a hard bound, said once when it holds fewer than the batch size.
        memory_limit_bytes: the ceiling on what a worker plans to hold at once: decoded frames, the open
            episodes' compressed videos and the decoders kept open at their position for long GOPs. The
            scheduler opens an episode only while the sum stays under it (one is always open), at any GOP,
            window and batch size; when that holds fewer open episodes than the batch size, it says so
            once with the numbers. ``stats()["memory"]`` shows the planned and the observed peak.
        max_decoders: torchcodec decoders kept open (least recently used closed first; reopening one costs a
            scan of its mini-MP4, no decoding).
        num_ffmpeg_threads: decoder threads per video (1 is best with one DataLoader worker per core).

    How batches are built and handed out is :class:`~lerobot_wds.reader.assembling.config.AssembleConfig`.
    """

    frame_cache_bytes: int | None = None
    open_episode_bytes: int | None = None
    memory_limit_bytes: int = DEFAULT_MEMORY_BYTES
    max_decoders: int = 192
    num_ffmpeg_threads: int = 1

    def __post_init__(self) -> None:
        for name in (
            "frame_cache_bytes",
            "open_episode_bytes",
            "memory_limit_bytes",
            "max_decoders",
            "num_ffmpeg_threads",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise OptionError(f"DecodeConfig.{name} must be >= 1, got {getattr(self, name)}")


def open_decoder(episode: Episode, camera: str, threads: int) -> VideoDecoder:
    """Opens a camera's mini-MP4 and checks its frame count and size against the episode metadata."""
    cam = episode.meta.cameras[camera]
    where = f"{episode.where}, camera {camera}"
    try:
        decoder = VideoDecoder(
            episode.videos[camera], seek_mode="exact", num_ffmpeg_threads=threads, dimension_order="NHWC"
        )
    except (RuntimeError, ValueError) as e:
        raise FrameDecodeError(f"{where}: mini-MP4 cannot be opened: {e}") from e
    md = decoder.metadata
    if md.num_frames != cam.frames or md.width != cam.width or md.height != cam.height:
        raise FrameDecodeError(
            f"{where}: mini-MP4 has {md.num_frames} frames of {md.width}x{md.height}, episode metadata says "
            f"{cam.frames} frames of {cam.width}x{cam.height}"
        )
    return decoder


def gop_starts(decoder: VideoDecoder, episode: Episode, camera: str) -> list[int]:
    """Episode frames at which decoding can start (keyframes in presentation order, minus the lead-in).

    torchcodec's exact-mode index knows the keyframes; where this build cannot tell, every decode is taken as
    starting at the first frame (the cost model then plans sequential units, which is always correct).
    """
    lead_in = episode.meta.cameras[camera].lead_in
    try:
        keys = [int(k) for k in decoder._get_key_frame_indices()]
    except (AttributeError, RuntimeError):
        keys = []
    return sorted(k - lead_in for k in keys) or [-lead_in]


def decode_frame(decoder: VideoDecoder, episode: Episode, camera: str, frame: int) -> np.ndarray:
    """Decodes one episode frame of a camera, checking its pts; returns ``[H, W, 3]`` uint8.

    torchcodec steps forward from the frame it decoded last when ``frame`` lies ahead of it in the same GOP
    (frames in between are decoded and dropped, never converted), else seeks to the keyframe of its GOP."""
    cam = episode.meta.cameras[camera]
    fps = episode.meta.fps
    try:
        got = decoder.get_frame_at(cam.frame_position(frame))
    except (RuntimeError, IndexError, ValueError) as e:
        raise FrameDecodeError(
            f"{episode.where}, camera {camera}: decoding episode frame {frame} failed: {e}"
        ) from e
    expected = cam.pts_offset_s + frame / fps
    if abs(got.pts_seconds - expected) > 0.5 / fps:
        position = cam.frame_position(frame)
        raise FrameDecodeError(
            f"{episode.where}, camera {camera}: episode frame {frame} (mini-MP4 frame {position}) "
            f"expected at pts {expected:.6f}s, decoder returned pts {got.pts_seconds:.6f}s"
        )
    return got.data.numpy()


def decode_range(decoder: VideoDecoder, episode: Episode, camera: str, first: int, stop: int) -> np.ndarray:
    """Decodes episode frames ``first:stop`` of a camera (one seek, then forward), checking their pts.

    Returns ``[T, H, W, 3]`` uint8, the layout the decoder writes (a contiguous copy per frame is cheap;
    :mod:`frames` turns it into lerobot's ``[3, H, W]`` while writing into the batch)."""
    cam = episode.meta.cameras[camera]
    fps = episode.meta.fps
    where = f"{episode.where}, camera {camera}"
    start = cam.frame_position(first)
    try:
        batch = decoder.get_frames_in_range(start, start + stop - first)
    except (RuntimeError, IndexError, ValueError) as e:
        raise FrameDecodeError(f"{where}: decoding episode frames {first}..{stop} failed: {e}") from e
    pts = batch.pts_seconds.numpy()
    expected = cam.pts_offset_s + np.arange(first, stop) / fps
    off = np.flatnonzero(np.abs(pts - expected) > 0.5 / fps)
    if off.size:
        k = int(off[0])
        raise FrameDecodeError(
            f"{where}: episode frame {first + k} (mini-MP4 frame {cam.frame_position(first + k)}) expected "
            f"at pts {expected[k]:.6f}s, decoder returned pts {pts[k]:.6f}s"
        )
    return batch.data.numpy()
