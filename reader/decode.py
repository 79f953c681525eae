"""Decoding episode frames from in-memory mini-MP4s with torchcodec, checked by presentation time.

Each (episode, camera) is decoded in ONE sequential pass on its first request: sequential decoding is
the fastest way through a video (no seeks, every reference frame decoded once), and the windows of
neighbouring anchors overlap heavily, so every frame of an episode visit is decoded exactly once and
later requests are served from the decoded array. The episode pool in ``stages.anchors`` bounds how
many decoded episodes are alive at once by bytes (see ``decoded_bytes``); ``release`` frees one.

Frames are selected by presentation position ``lead_in + k`` (torchcodec ``seek_mode="exact"`` indexes
frames in presentation order, so B-frame reordering cannot hand back a neighbour) and every returned pts
is checked against ``pts_offset_s + k / fps`` within half a frame.

Frames are held and gathered as numpy arrays: numpy copies are single-threaded, while torch's intra-op
thread pool turns each small copy into a cross-thread handoff that costs milliseconds on a busy machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torchcodec.decoders import VideoDecoder

from lerobot_wds.reader.cache import CacheStats
from lerobot_wds.reader.episode import Episode
from lerobot_wds.reader.errors import FrameDecodeError

UINT8_SCALE = np.float32(255.0)  # lerobot's images are uint8 / 255 in float32


@dataclass(frozen=True)
class DecodeConfig:
    """Budgets of one worker's decoding.

    Attributes:
        frame_cache_bytes: decoded frames alive at once (uint8 bytes), shared by the open episodes. The
            episode pool opens another episode only while the decoded size of the open ones fits (at least
            one is always open, whatever its size).
        block_frames: frames decoded per sequential pass: a request decodes the blocks it touches, each
            once per episode visit. Larger blocks seek less; smaller ones reach a first frame sooner.
        num_ffmpeg_threads: decoder threads per video (1 is best with one DataLoader worker per core).
        batch_slots: shared-memory batch slots a DataLoader worker keeps for reuse when the dataset builds
            batches (``batch_size=``); 0 makes every batch fresh shared memory (see :mod:`transport`).
        tune_worker_malloc: inside DataLoader workers, keep freed frame buffers in the heap for reuse instead
            of page-faulting fresh ones per decoded block (glibc only; see :mod:`worker_memory`).
    """

    frame_cache_bytes: int = 512 * 1024 * 1024
    block_frames: int = 64
    num_ffmpeg_threads: int = 1
    batch_slots: int = 8
    tune_worker_malloc: bool = True

    def __post_init__(self) -> None:
        for name in ("frame_cache_bytes", "block_frames", "num_ffmpeg_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"DecodeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_slots < 0:
            raise ValueError(f"DecodeConfig.batch_slots must be >= 0, got {self.batch_slots}")


def decoded_bytes(episode: Episode, frames: int | None = None) -> int:
    """Returns the uint8 bytes of ``frames`` (default: all) of an episode's frames of every camera, decoded."""
    n = episode.length if frames is None else min(frames, episode.length)
    return sum(n * 3 * c.width * c.height for c in episode.meta.cameras.values())


class FrameSource:
    """Returns decoded uint8 [T,C,H,W] frames of an episode's camera, decoding each frame once per visit.

    An episode camera is decoded block by block (``block_frames`` consecutive frames, one sequential pass
    each) as requests reach the blocks; blocks and the decoder live until ``release``. Counters
    (``stats()``): ``decoders`` counts block lookups (a miss decodes the block), ``frames`` counts frames
    delivered from already-decoded frames (hits) against frames decoded (misses).
    """

    def __init__(self, config: DecodeConfig = DecodeConfig()) -> None:
        self.config = config
        self._blocks: dict[tuple[int, str, int], np.ndarray] = {}
        self._decoders: dict[tuple[int, str], VideoDecoder] = {}
        self._left: dict[tuple[int, int], int] = {}  # (episode, block) -> anchors not yet done (see done())
        self._bytes = self._peak_bytes = 0
        self.hits = self.misses = self.evictions = 0
        self.decoded_frames = self.delivered_frames = 0

    def get(self, episode: Episode, camera: str, positions: Sequence[int]) -> np.ndarray:
        """Returns frames at episode frame positions (already clamped to [0, length)) as uint8 [T,C,H,W]."""
        cam = episode.meta.cameras[camera]
        out = np.empty((len(positions), 3, cam.height, cam.width), np.uint8)
        self.gather_into(episode, camera, positions, out)
        return out

    def gather_into(self, episode: Episode, camera: str, positions: Sequence[int], out: np.ndarray) -> None:
        """Writes frames at episode positions into ``out`` ([T,C,H,W], or [C,H,W] for one position).

        ``out`` may be float32: frames are then written as ``uint8 / 255`` in float32 (lerobot's arithmetic).
        """
        size = self.config.block_frames
        blocks = {b: self._block(episode, camera, b) for b in sorted({p // size for p in positions})}
        self.delivered_frames += len(positions)
        rows = out[None] if out.ndim == 3 else out
        for i, p in enumerate(positions):
            src = blocks[p // size][p % size]
            if rows.dtype == np.uint8:
                rows[i] = src
            else:
                np.divide(src, UINT8_SCALE, out=rows[i], dtype=np.float32)

    def done(self, episode: Episode, frame: int) -> None:
        """Marks anchor ``frame`` built; a block whose every anchor is done is dropped at once.

        Only valid when samples show nothing but their anchor frame (no windows): then a block is needed by
        its own anchors alone, and block-ordered anchors keep about one block per open episode alive.
        """
        size = self.config.block_frames
        b = frame // size
        key = (episode.index, b)
        left = self._left.get(key, min(size, episode.length - b * size)) - 1
        if left > 0:
            self._left[key] = left
            return
        self._left.pop(key, None)
        for camera in episode.videos:
            frames = self._blocks.pop((episode.index, camera, b), None)
            if frames is not None:
                self._bytes -= frames.nbytes

    def release(self, episode: Episode) -> None:
        """Drops an episode's decoders and decoded frames once its visit is over."""
        for key in [k for k in self._blocks if k[0] == episode.index]:
            self._bytes -= self._blocks.pop(key).nbytes
        for key in [k for k in self._decoders if k[0] == episode.index]:
            del self._decoders[key]
        for key in [k for k in self._left if k[0] == episode.index]:
            del self._left[key]

    def stats(self) -> dict[str, CacheStats]:
        size, cap = len(self._blocks), self.config.frame_cache_bytes
        reused = max(0, self.delivered_frames - self.decoded_frames)
        return {
            "decoders": CacheStats(
                self.hits, self.misses, self.evictions, size, self._bytes, cap, self._peak_bytes
            ),
            "frames": CacheStats(reused, self.decoded_frames, 0, size, self._bytes, cap, self._peak_bytes),
        }

    def _block(self, episode: Episode, camera: str, b: int) -> np.ndarray:
        key = (episode.index, camera, b)
        frames = self._blocks.get(key)
        if frames is not None:
            self.hits += 1
            return frames
        self.misses += 1
        size = self.config.block_frames
        frames = self._decode(episode, camera, b * size, min((b + 1) * size, episode.length))
        self._blocks[key] = frames
        self._bytes += frames.nbytes
        self._peak_bytes = max(self._peak_bytes, self._bytes)
        return frames

    def _decoder(self, episode: Episode, camera: str, where: str) -> VideoDecoder:
        decoder = self._decoders.get((episode.index, camera))
        if decoder is not None:
            return decoder
        cam = episode.meta.cameras[camera]
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
        self._decoders[(episode.index, camera)] = decoder
        return decoder

    def _decode(self, episode: Episode, camera: str, first: int, stop: int) -> np.ndarray:
        """Decodes episode frames ``first:stop`` of a camera in one sequential pass, checking their pts."""
        cam = episode.meta.cameras[camera]
        fps = episode.meta.fps
        where = f"{episode.where}, camera {camera}"
        decoder = self._decoder(episode, camera, where)
        start = cam.frame_position(first)
        try:
            batch = decoder.get_frames_in_range(start, start + stop - first)
        except (RuntimeError, IndexError, ValueError) as e:
            raise FrameDecodeError(f"{where}: decoding episode frames {first}..{stop} failed: {e}") from e
        self.decoded_frames += stop - first
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
