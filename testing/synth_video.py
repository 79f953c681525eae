"""Real ffmpeg encodes for test fixtures: raw RGB frames piped in, MP4 out, and stream-copy concatenation.

Encoder settings mirror what real LeRobot datasets contain: lerobot's default AV1 (libsvtav1, GOP 2,
crf 30, preset 12, yuv420p) and the long-GOP H.264 / HEVC with B-frames found in the wild (so packets have
pts != dts, ctts boxes and an edit list). ``faststart=False`` leaves the moov box after mdat.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Codec = Literal["av1", "h264", "hevc"]
CODECS: tuple[str, ...] = ("av1", "h264", "hevc")


class FixtureVideoError(RuntimeError):
    """ffmpeg failed while building a fixture video; the message holds the command and ffmpeg's stderr."""


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder options of one codec; ``gop`` frames between keyframes, ``bframes`` consecutive B-frames."""

    codec: Codec
    gop: int
    bframes: int
    crf: int
    preset: str

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r} is not one of {CODECS}")
        if self.gop < 1:
            raise ValueError(f"gop must be >= 1, got {self.gop}")
        if self.bframes < 0 or (self.codec == "av1" and self.bframes):
            raise ValueError(f"bframes {self.bframes} invalid for codec {self.codec!r} (av1 has none)")

    def ffmpeg_args(self) -> list[str]:
        """Returns the ffmpeg output options selecting and configuring the encoder."""
        if self.codec == "av1":
            return ["-c:v", "libsvtav1", "-g", str(self.gop), "-crf", str(self.crf), "-preset", self.preset]
        if self.codec == "h264":
            # scenecut off: GOP boundaries are exactly every `gop` frames, so tests know where keyframes are.
            return [
                "-c:v",
                "libx264",
                "-preset",
                self.preset,
                "-crf",
                str(self.crf),
                "-g",
                str(self.gop),
                "-keyint_min",
                str(self.gop),
                "-bf",
                str(self.bframes),
                "-sc_threshold",
                "0",
            ]
        params = (
            f"keyint={self.gop}:min-keyint={self.gop}:bframes={self.bframes}:scenecut=0:b-adapt=0:log-level=error"
        )
        return [
            "-c:v",
            "libx265",
            "-preset",
            self.preset,
            "-crf",
            str(self.crf),
            "-x265-params",
            params,
            "-tag:v",
            "hvc1",
        ]


def default_settings(codec: Codec, gop: int | None = None, bframes: int | None = None) -> EncoderSettings:
    """Returns lerobot's AV1 defaults, or a long-GOP B-frame setup for H.264 / HEVC."""
    if codec == "av1":
        return EncoderSettings("av1", gop if gop is not None else 2, bframes or 0, 30, "12")
    if codec == "h264":
        return EncoderSettings("h264", gop or 30, 2 if bframes is None else bframes, 23, "veryfast")
    if codec == "hevc":
        return EncoderSettings("hevc", gop or 30, 2 if bframes is None else bframes, 28, "ultrafast")
    raise ValueError(f"codec {codec!r} is not one of {CODECS}")


def _run(cmd: list[str], stdin: bytes | None = None) -> None:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise FixtureVideoError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")


def encode_frames(
    frames: np.ndarray, out: Path, *, fps: int, settings: EncoderSettings, faststart: bool = True
) -> Path:
    """Encodes ``frames`` (N, H, W, 3 uint8 RGB) into the MP4 ``out`` with ffmpeg."""
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (N, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    n, h, w, _ = frames.shape
    cmd = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{w}x{h}",
        "-framerate",
        str(fps),
        "-i",
        "-",
        *settings.ffmpeg_args(),
        "-pix_fmt",
        "yuv420p",
        "-threads",
        "1",
        "-an",
    ]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([*cmd, str(out)], stdin=np.ascontiguousarray(frames).tobytes())
    return out


def concat_copy(inputs: list[Path], out: Path, *, faststart: bool = True) -> Path:
    """Concatenates MP4s by stream copy with ffmpeg's concat demuxer, as lerobot does when saving episodes."""
    if not inputs:
        raise ValueError("concat_copy needs at least one input")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".ffconcat", delete=False, dir=out.parent) as f:
        f.write("ffconcat version 1.0\n")
        for p in inputs:
            f.write(f"file '{Path(p).resolve()}'\n")
        listing = Path(f.name)
    try:
        cmd = [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            "-map",
            "0:v",
        ]
        if faststart:
            cmd += ["-movflags", "+faststart"]
        _run([*cmd, str(out)])
    finally:
        listing.unlink()
    return out


def video_duration_s(path: Path) -> float:
    """Returns the video stream duration exactly as lerobot's ``get_video_duration_in_s`` computes it."""
    import av  # optional dependency (extra 'testing'): probes durations the way lerobot does

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is None:
            raise ValueError(f"{path}: neither the stream nor the container states a duration")
        return float(container.duration / av.time_base)


def video_stream_info(path: Path) -> dict[str, object]:
    """Returns the stream-derived ``video.*`` entries lerobot's ``get_video_info`` writes into info.json."""
    import av  # optional dependency (extra 'testing'): probes durations the way lerobot does

    with av.open(str(path)) as container:
        s = container.streams.video[0]
        return {
            "video.height": s.height,
            "video.width": s.width,
            "video.codec": s.codec.canonical_name,
            "video.pix_fmt": s.pix_fmt,
            "video.fps": int(s.base_rate or 0),
            "video.channels": 3,
            "has_audio": len(container.streams.audio) > 0,
        }
