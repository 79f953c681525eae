"""``verify --decode K``: frames decoded from each mini-MP4 compared bit for bit with the source's frames.

A conversion made with ``--reencode`` is compared by PSNR instead (:mod:`lerobot_wds.tools.verify.psnr`).

For K deterministically chosen episode frames ``k`` (always the first and the last), the mini-MP4 is decoded
at presentation position ``lead_in + k`` (torchcodec exact mode; the returned pts is checked too) and the
source file at ``from_timestamp + (k + 0.5) / fps`` — mid-frame, so rounding of the episode's start time
cannot pick a neighbour. Both go through the same torchcodec build, so equal frames are bit-identical.

A source file is opened in approximate mode: frames are found by time through the container's own index
(FFmpeg seeks to the keyframe before and decodes forward), so opening it reads its moov only, never the whole
file as exact mode's scan does (a source MP4 holds thousands of episodes; a remote one would be downloaded).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torchcodec.decoders import VideoDecoder

from lerobot_wds.convert.source import LeRobotSource
from lerobot_wds.core.format import EpisodeMeta, episode_key, video_suffix
from lerobot_wds.core.lru import LruCache
from lerobot_wds.tools.report import Finding
from lerobot_wds.tools.verify.psnr import PsnrTally, psnr_db

_DECODE_ERRORS = (RuntimeError, ValueError, IndexError)


def pick_frames(length: int, k: int) -> list[int]:
    """Returns up to ``k`` distinct episode frames spread evenly over ``[0, length)``, first and last included."""
    if length < 1 or k < 1:
        return []
    if k == 1:
        return [0]
    return sorted({int(round(x)) for x in np.linspace(0, length - 1, min(k, length))})


class DecodeParityCheck:
    """A sample hook decoding K frames per camera from the mini-MP4 and from the source and comparing them.

    Source decoders are kept in an LRU (a source file holds many episodes; reopening one reads its moov again).
    """

    def __init__(
        self,
        source: LeRobotSource,
        frames_per_episode: int,
        *,
        max_source_decoders: int = 32,
        min_psnr_db: float | None = None,
    ) -> None:
        """``min_psnr_db``: compare by PSNR (re-encoded conversions), a finding below it; None: bit for bit."""
        if frames_per_episode < 1:
            raise ValueError(f"frames_per_episode must be >= 1, got {frames_per_episode}")
        self.source = source
        self.k = frames_per_episode
        self.max_source_decoders = max_source_decoders
        # source decoders with their open file handles, keyed (None, rel); an evicted one's handle is closed
        self._decoders: LruCache[tuple[VideoDecoder, Any]] = LruCache(max_source_decoders, on_evict=_close_handle)
        self.decoded_frames = 0
        self.min_psnr_db = min_psnr_db
        self.psnr = PsnrTally()

    def __call__(self, shard: str, meta: EpisodeMeta, rows: pa.Table, members: dict[str, bytes]) -> list[Finding]:
        out: list[Finding] = []
        ks = pick_frames(meta.length, self.k)
        for cam, cm in meta.cameras.items():
            data = members.get(video_suffix(cam))
            if data is None or not ks:
                continue
            member = f"{episode_key(meta.episode_index)}.{video_suffix(cam)}"

            def finding(message: str, cam: str = cam, member: str = member) -> None:
                out.append(Finding("decode", message, shard, meta.episode_index, cam, member))

            try:
                mini = VideoDecoder(data, seek_mode="exact").get_frames_at([cm.frame_position(k) for k in ks])
            except _DECODE_ERRORS as e:
                finding(f"mini-MP4 frames {[cm.frame_position(k) for k in ks]} cannot be decoded: {e}")
                continue
            times = [cm.source_from_timestamp + (k + 0.5) / meta.fps for k in ks]
            try:
                src = self._source_decoder(cm.source_file).get_frames_played_at(times)
            except _DECODE_ERRORS as e:
                finding(f"source {cm.source_file} cannot be decoded at {times[0]:.4f}..{times[-1]:.4f} s: {e}")
                continue
            self.decoded_frames += len(ks)
            for i, k in enumerate(ks):
                expected_pts = cm.pts_offset_s + k / meta.fps
                pts = float(mini.pts_seconds[i])
                if abs(pts - expected_pts) > 0.5 / meta.fps:
                    finding(
                        f"episode frame {k} (mini-MP4 frame {cm.frame_position(k)}) presented at {pts:.6f} s, "
                        f"expected {expected_pts:.6f} s"
                    )
                if mini.data[i].shape != src.data[i].shape:
                    finding(
                        f"episode frame {k}: shape {tuple(mini.data[i].shape)}, source frame at "
                        f"{times[i]:.4f} s has {tuple(src.data[i].shape)}"
                    )
                elif self.min_psnr_db is not None:
                    db = psnr_db(mini.data[i], src.data[i])
                    self.psnr.add(db)
                    if db < self.min_psnr_db:
                        finding(
                            f"episode frame {k} (re-encoded) is {db:.2f} dB PSNR from the source {cm.source_file} "
                            f"at {times[i]:.4f} s, expected at least {self.min_psnr_db:g} dB"
                        )
                elif not torch.equal(mini.data[i], src.data[i]):
                    diff = (mini.data[i].int() - src.data[i].int()).abs()
                    finding(
                        f"episode frame {k} (mini-MP4 frame {cm.frame_position(k)}) differs from the source "
                        f"{cm.source_file} at {times[i]:.4f} s: {int((diff > 0).sum())} values differ, "
                        f"max abs diff {int(diff.max())}"
                    )
        return out

    def _source_decoder(self, rel: str) -> VideoDecoder:
        cached = self._decoders.get((None, rel))
        if cached is not None:
            return cached[0]
        path = self.source.full(rel)
        protocols = self.source.fs.protocol
        protocols = protocols if isinstance(protocols, tuple) else (protocols,)
        handle: Any = None
        if "file" in protocols or "local" in protocols:
            decoder = VideoDecoder(path, seek_mode="approximate")
        else:
            handle = self.source.fs.open(path, "rb")  # torchcodec reads file-like objects on demand
            decoder = VideoDecoder(handle, seek_mode="approximate")
        self._decoders.put((None, rel), (decoder, handle))
        return decoder

    def close(self) -> None:
        for _, handle in self._decoders.values():
            if handle is not None:
                handle.close()
        self._decoders.clear()


def _close_handle(_key: tuple[Hashable, Hashable], entry: tuple[VideoDecoder, Any]) -> None:
    handle = entry[1]
    if handle is not None:
        handle.close()
