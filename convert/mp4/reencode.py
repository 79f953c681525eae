"""Opt-in short-GOP re-encoding of each episode's camera stream (``convert --reencode``).

The converter copies encoded samples by default, so a long-GOP source (H.264 with GOPs of 30-250 and
B-frames) costs every random access up to a GOP of decodes. With ``--reencode`` each cut clip is decoded
once, offline, by the ffmpeg binary, and only the episode's own frames are encoded again (lerobot's AV1
settings by default): the mini-MP4 starts on the episode's first frame, with no lead-in or trail. Frames
then differ from the source by the encode, so ``verify`` compares them by PSNR instead of equality.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from lerobot_wds.convert.errors import ConfigError, Mp4Error
from lerobot_wds.convert.mp4.cut import Clip, cut_episode
from lerobot_wds.convert.mp4.index import parse_track_index
from lerobot_wds.convert.mp4.io import bytes_reader

ReencodeCodec = Literal["av1", "h264"]
# lerobot 0.6.1's encoding (lerobot.datasets.video_utils): libsvtav1, GOP 2, crf 30, preset 12, yuv420p.
# H.264 for GPUs without an AV1 decoder (Hopper): the same GOP and pixel format, x264's own crf and preset.
_ENCODERS: dict[str, tuple[str, int, str]] = {"av1": ("libsvtav1", 30, "12"), "h264": ("libx264", 23, "medium")}
DEFAULT_GOP = 2
PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class EncodeSettings:
    """How each episode's frames are encoded again: codec, GOP (frames between keyframes), crf and preset."""

    codec: ReencodeCodec
    gop: int = DEFAULT_GOP

    def __post_init__(self) -> None:
        if self.codec not in _ENCODERS:
            raise ConfigError(f"reencode must be one of {list(get_args(ReencodeCodec))}, got {self.codec!r}")
        if self.gop < 1:
            raise ConfigError(f"reencode_gop must be >= 1, got {self.gop}")

    @property
    def encoder(self) -> str:
        return _ENCODERS[self.codec][0]

    def options(self) -> dict[str, Any]:
        """Returns the settings as recorded in the manifest's conversion options."""
        encoder, crf, preset = _ENCODERS[self.codec]
        return {"codec": self.codec, "encoder": encoder, "gop": self.gop, "crf": crf, "preset": preset,
                "pix_fmt": PIX_FMT}  # fmt: skip

    def ffmpeg_args(self) -> list[str]:
        """Returns ffmpeg's output options selecting and configuring the encoder."""
        encoder, crf, preset = _ENCODERS[self.codec]
        args = ["-c:v", encoder, "-g", str(self.gop), "-crf", str(crf), "-preset", preset, "-pix_fmt", PIX_FMT]
        if self.codec == "h264":  # keyframes exactly every `gop` frames; B-frames buy nothing at short GOPs
            args += ["-keyint_min", str(self.gop), "-sc_threshold", "0", "-bf", "0", "-threads", "1"]
        return args


def ffmpeg_binary() -> str:
    """Returns the ffmpeg executable ``--reencode`` runs, or raises ConfigError when there is none."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise ConfigError("--reencode needs the ffmpeg binary on PATH; none was found")
    return path


def require_encoder(encoder: str) -> None:
    """Raises ConfigError unless the ffmpeg binary has ``encoder`` (before any episode is built)."""
    binary = ffmpeg_binary()
    if encoder not in _encoders(binary):
        raise ConfigError(f"--reencode needs ffmpeg's {encoder} encoder; {binary} does not list it in -encoders")


@functools.lru_cache(maxsize=4)
def _encoders(binary: str) -> frozenset[str]:
    proc = subprocess.run([binary, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False)
    return frozenset(line.split()[1] for line in proc.stdout.splitlines() if len(line.split()) > 1)


def reencode_clip(clip: Clip, *, length: int, fps: float, settings: EncodeSettings, where: str) -> Clip:
    """Encodes the ``length`` episode frames of ``clip`` again; returns a clip of exactly those frames.

    The episode's frames are those presented from ``clip.pts_offset_s`` at ``1 / fps`` spacing (the lead-in
    and trail frames a long GOP needed are decoded and dropped). The result is cut by the same remux code as
    a copied clip, so its timing metadata comes from the new file's own index.

    Raises:
        Mp4Error: naming ``where`` when ffmpeg cannot decode the clip or the encode holds other frames.
    """
    half = 0.5 / fps
    lo, hi = clip.pts_offset_s - half, clip.pts_offset_s + (length - 0.5) / fps
    select = f"select='gte(t\\,{lo:.9f})*lt(t\\,{hi:.9f})',setpts=N/({fps}*TB)"
    with tempfile.TemporaryDirectory(prefix="lerobot-wds-reencode-") as tmp:
        src, out = Path(tmp) / "in.mp4", Path(tmp) / "out.mp4"
        src.write_bytes(clip.data)
        cmd = [ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-copyts", "-i", str(src),
               "-map", "0:v:0", "-an", "-vf", select, "-fps_mode", "passthrough", *settings.ffmpeg_args(),
               "-movflags", "+faststart", str(out)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise Mp4Error(f"{where}: re-encoding with {settings.encoder} failed: {proc.stderr.strip()[-500:]}")
        data = out.read_bytes()
    read, size = bytes_reader(data)
    index = parse_track_index(read, size, name=f"{where} (re-encoded)")
    first = float(index.pts().min()) / index.timescale if index.sample_count else 0.0
    return cut_episode(
        index,
        read,
        from_timestamp=first,
        to_timestamp=first + length / fps,
        fps=fps,
        expected_frames=length,
        where=f"{where} (re-encoded with {settings.encoder})",
    )
