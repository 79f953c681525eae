"""Decoding episode frames from in-memory mini-MP4s with torchcodec, checked by presentation time.

Frames are selected by presentation position ``lead_in + k`` (torchcodec ``seek_mode="exact"`` indexes
frames in presentation order, so B-frame reordering cannot hand back a neighbour) and every returned pts is
checked against ``pts_offset_s + k / fps`` within half a frame. Decoders live in a bounded LRU cache (count)
and decoded frames in another (bytes); both count hits, misses and evictions. When an episode's frames of a
camera fit its share of the frame budget they are decoded in one sequential pass on first use, so each frame
is decoded once per episode visit; otherwise only the requested frames are decoded.

Frames are held and stacked as numpy arrays: numpy copies are single-threaded, while torch's intra-op thread
pool turns each small copy into a cross-thread handoff that costs milliseconds on a busy machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torchcodec.decoders import VideoDecoder

from lerobot_wds.reader.cache import CacheStats, LruCache
from lerobot_wds.reader.episode import Episode
from lerobot_wds.reader.errors import FrameDecodeError


@dataclass(frozen=True)
class DecodeConfig:
    """Budgets of one worker's decoding: cached decoders and decoded-frame bytes."""

    max_decoders: int = 32
    frame_cache_bytes: int = 768 * 1024 * 1024
    episodes_sharing_cache: int = 8
    num_ffmpeg_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("max_decoders", "frame_cache_bytes", "episodes_sharing_cache", "num_ffmpeg_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"DecodeConfig.{name} must be >= 1, got {getattr(self, name)}")


def _nbytes(a: np.ndarray) -> int:
    return a.nbytes


class FrameSource:
    """Returns decoded uint8 [T,C,H,W] frames of an episode's camera, decoding each needed frame once."""

    def __init__(self, config: DecodeConfig = DecodeConfig()) -> None:
        self.config = config
        self.decoders: LruCache[VideoDecoder] = LruCache(config.max_decoders)
        self.frames: LruCache[np.ndarray] = LruCache(config.frame_cache_bytes, cost=_nbytes)
        self._whole_done: set[tuple[int, str]] = set()
        self.decoded_frames = 0

    def get(self, episode: Episode, camera: str, positions: Sequence[int]) -> np.ndarray:
        """Returns frames at episode frame positions (already clamped to [0, length)) as uint8 [T,C,H,W]."""
        group = (episode.index, camera)
        found: dict[int, np.ndarray] = {}
        for k in set(positions):
            frame = self.frames.get((group, k))
            if frame is not None:
                found[k] = frame
        missing = sorted(set(positions) - set(found))
        if missing:
            if group not in self._whole_done and self._fits(episode, camera):
                self._whole_done.add(group)
                found.update(self._decode(episode, camera, list(range(episode.length)), keep=set(missing)))
            else:
                found.update(self._decode(episode, camera, missing, keep=set(missing)))
        return np.stack([found[k] for k in positions])

    def release(self, episode: Episode) -> None:
        """Drops an episode's decoders and frames once its visit is over."""
        for camera in episode.videos:
            group = (episode.index, camera)
            self.frames.drop_group(group)
            self.decoders.drop_group(group)
            self._whole_done.discard(group)

    def stats(self) -> dict[str, CacheStats]:
        return {"decoders": self.decoders.stats(), "frames": self.frames.stats()}

    def _fits(self, episode: Episode, camera: str) -> bool:
        cam = episode.meta.cameras[camera]
        whole = episode.length * 3 * cam.width * cam.height
        return whole * len(episode.videos) <= self.config.frame_cache_bytes // self.config.episodes_sharing_cache

    def _decoder(self, episode: Episode, camera: str) -> VideoDecoder:
        key = ((episode.index, camera), 0)
        decoder = self.decoders.get(key)
        if decoder is not None:
            return decoder
        cam = episode.meta.cameras[camera]
        where = f"{episode.where}, camera {camera}"
        try:
            decoder = VideoDecoder(
                episode.videos[camera], seek_mode="exact", num_ffmpeg_threads=self.config.num_ffmpeg_threads
            )
        except (RuntimeError, ValueError) as e:
            raise FrameDecodeError(f"{where}: mini-MP4 cannot be opened: {e}") from e
        md = decoder.metadata
        if md.num_frames != cam.frames or md.width != cam.width or md.height != cam.height:
            raise FrameDecodeError(
                f"{where}: mini-MP4 has {md.num_frames} frames of {md.width}x{md.height}, episode metadata says "
                f"{cam.frames} frames of {cam.width}x{cam.height}"
            )
        self.decoders.put(key, decoder)
        return decoder

    def _decode(self, episode: Episode, camera: str, ks: list[int], keep: set[int]) -> dict[int, np.ndarray]:
        cam = episode.meta.cameras[camera]
        fps = episode.meta.fps
        where = f"{episode.where}, camera {camera}"
        decoder = self._decoder(episode, camera)
        try:
            batch = decoder.get_frames_at([cam.frame_position(k) for k in ks])
        except (RuntimeError, IndexError, ValueError) as e:
            raise FrameDecodeError(f"{where}: decoding frames {ks[:3]}..{ks[-1]} failed: {e}") from e
        self.decoded_frames += len(ks)
        pts = batch.pts_seconds.tolist()
        out: dict[int, np.ndarray] = {}
        data = batch.data.numpy()
        group = (episode.index, camera)
        for i, k in enumerate(ks):
            expected = cam.pts_offset_s + k / fps
            if abs(pts[i] - expected) > 0.5 / fps:
                raise FrameDecodeError(
                    f"{where}: episode frame {k} (mini-MP4 frame {cam.frame_position(k)}) expected at "
                    f"pts {expected:.6f}s, decoder returned pts {pts[i]:.6f}s"
                )
            frame = data[i].copy()  # own storage so the byte budget counts what is really held
            self.frames.put((group, k), frame)
            if k in keep:
                out[k] = frame
        return out
