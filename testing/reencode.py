"""Copies a LeRobot v3 root with every video file re-encoded by ffmpeg (e.g. H.264, GOP 250, B-frames).

Benchmark datasets with long GOPs: real datasets ported from other formats are mostly H.264 with GOPs of
30-250 and B-frames, one encode per file, so episodes start mid-GOP. ``reencode_root`` copies a root,
re-encodes each ``videos/**.mp4`` as one stream (same frames, same presentation timestamps, so the
episodes' ``from_timestamp`` / ``to_timestamp`` and lerobot's frame lookup still hold), checks each output's
packet timestamps against its source with ffprobe, and rewrites ``meta/info.json``'s ``video.*`` entries.
The copy is built under a temporary name and renamed when complete.

Run: ``python -m lerobot_wds.testing.reencode SRC DST --codec libx264 --gop 250 --bframes 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Encoder = Literal["libx264", "libx265"]
ENCODERS: tuple[str, ...] = ("libx264", "libx265")
INFO_PATH = "meta/info.json"
# ffprobe reports packet times in the stream's time base; equal frames keep equal pts within this (seconds).
PTS_TOLERANCE_S = 1e-6


class ReencodeError(RuntimeError):
    """ffmpeg/ffprobe failed or a re-encoded file does not hold its source's frames; names the file."""


@dataclass(frozen=True)
class ReencodeSettings:
    """One encoder configuration: ``gop`` frames between keyframes at most, ``bframes`` consecutive B-frames.

    ``scenecut`` keeps the encoder's scene-cut keyframes (x264's default; an episode boundary is often one);
    False places keyframes exactly every ``gop`` frames, so nearly every episode starts mid-GOP.
    """

    encoder: Encoder = "libx264"
    gop: int = 250
    bframes: int = 2
    crf: int = 18
    preset: str = "medium"
    scenecut: bool = True

    def __post_init__(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder {self.encoder!r} is not one of {ENCODERS}")
        if self.gop < 1 or self.bframes < 0 or not 0 <= self.crf <= 51:
            raise ValueError(f"need gop >= 1, bframes >= 0, 0 <= crf <= 51; got {self}")

    def ffmpeg_args(self) -> list[str]:
        """Returns ffmpeg's output options selecting and configuring the encoder."""
        common = ["-preset", self.preset, "-crf", str(self.crf), "-pix_fmt", "yuv420p"]
        if self.encoder == "libx264":
            cut = [] if self.scenecut else ["-sc_threshold", "0", "-keyint_min", str(self.gop)]
            return ["-c:v", "libx264", *common, "-g", str(self.gop), "-bf", str(self.bframes), *cut]
        params = f"keyint={self.gop}:bframes={self.bframes}:log-level=error"
        if not self.scenecut:
            params += f":scenecut=0:min-keyint={self.gop}"
        return ["-c:v", "libx265", *common, "-x265-params", params, "-tag:v", "hvc1"]


@dataclass(frozen=True)
class StreamProbe:
    """What ffprobe says of a file's first video stream: codec, pixel format, time base, packet times."""

    codec: str
    pix_fmt: str
    timescale: int
    pts: tuple[int, ...]
    keyframes: int


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ReencodeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc.stdout


def probe(path: Path) -> StreamProbe:
    """Returns the first video stream's properties and every packet's pts (presentation order)."""
    out = json.loads(
        _run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-of",
                "json",
                "-show_entries",
                "stream=codec_name,pix_fmt,time_base:packet=pts,flags",
                str(path),
            ]
        )
    )
    if not out.get("streams"):
        raise ReencodeError(f"{path}: no video stream")
    stream = out["streams"][0]
    num, den = (int(x) for x in stream["time_base"].split("/"))
    if num != 1:
        raise ReencodeError(f"{path}: time base {stream['time_base']} is not 1/N")
    packets = out.get("packets", [])
    if any("pts" not in p for p in packets):
        raise ReencodeError(f"{path}: a packet has no pts")
    return StreamProbe(
        stream["codec_name"],
        stream.get("pix_fmt", ""),
        den,
        tuple(sorted(int(p["pts"]) for p in packets)),
        sum("K" in p.get("flags", "") for p in packets),
    )


def check_same_frames(src: StreamProbe, dst: StreamProbe, path: Path) -> None:
    """Raises unless ``dst`` holds as many frames as ``src`` at the same presentation times."""
    if len(src.pts) != len(dst.pts):
        raise ReencodeError(f"{path}: re-encode holds {len(dst.pts)} frames, source {len(src.pts)}")
    for i, (a, b) in enumerate(zip(src.pts, dst.pts, strict=True)):
        if abs(a / src.timescale - b / dst.timescale) > PTS_TOLERANCE_S:
            raise ReencodeError(
                f"{path}: frame {i} at {b / dst.timescale:.6f} s after re-encode, "
                f"{a / src.timescale:.6f} s in source"
            )


def reencode_file(src: Path, dst: Path, settings: ReencodeSettings) -> StreamProbe:
    """Re-encodes ``src``'s video stream into ``dst`` keeping every frame's timestamp; returns ``dst``'s probe."""
    before = probe(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(src),
            "-map",
            "0:v:0",
            "-an",
            "-fps_mode",
            "passthrough",
            *settings.ffmpeg_args(),
            "-video_track_timescale",
            str(before.timescale),
            "-movflags",
            "+faststart",
            str(dst),
        ]
    )
    after = probe(dst)
    check_same_frames(before, after, dst)
    return after


def _update_info(info: dict, camera: str, settings: ReencodeSettings, probed: StreamProbe) -> None:
    ft = info["features"][camera]
    video = dict(ft.get("info") or {})
    video.update(
        {
            "video.codec": probed.codec,
            "video.pix_fmt": probed.pix_fmt,
            "video.g": settings.gop,
            "video.crf": settings.crf,
            "video.preset": settings.preset,
        }
    )
    ft["info"] = video


def reencode_root(
    src: Path, dst: Path, settings: ReencodeSettings, *, jobs: int = 1, log: bool = False
) -> dict[str, int]:
    """Writes a copy of the LeRobot root ``src`` at ``dst`` (must not exist) with every video re-encoded.

    ``jobs`` files are encoded at a time.

    Returns counts: ``files`` re-encoded, ``frames`` in them, ``keyframes`` in them.
    """
    src, dst = Path(src), Path(dst)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if dst.exists():
        raise ReencodeError(f"{dst}: destination exists")
    info = json.loads((src / INFO_PATH).read_text())
    cameras = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    tmp = dst.with_name(f".{dst.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=lambda d, names: [n for n in names if n.endswith(".mp4")])
    jobs_by_camera = {}
    for camera in cameras:
        files = sorted((src / "videos" / camera).rglob("*.mp4"))
        if not files:
            raise ReencodeError(f"{src}: camera {camera} has no video files under videos/{camera}")
        jobs_by_camera[camera] = files

    def one(path: Path) -> StreamProbe:
        t0 = time.monotonic()
        probed = reencode_file(path, tmp / path.relative_to(src), settings)
        if log:
            rel = path.relative_to(src)
            print(f"{rel}: {len(probed.pts)} frames, {probed.keyframes} keyframes, {time.monotonic() - t0:.1f} s",
                  flush=True)  # fmt: skip
        return probed

    with ThreadPoolExecutor(jobs) as pool:  # each job is an ffmpeg process
        results = {cam: list(pool.map(one, files)) for cam, files in jobs_by_camera.items()}
    for camera, probes in results.items():
        _update_info(info, camera, settings, probes[-1])
    probes = [p for ps in results.values() for p in ps]
    counts = {"files": len(probes), "frames": sum(len(p.pts) for p in probes),
              "keyframes": sum(p.keyframes for p in probes)}  # fmt: skip
    (tmp / INFO_PATH).write_text(json.dumps(info, indent=4, ensure_ascii=False))
    tmp.rename(dst)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Copies a LeRobot v3 root with every video re-encoded (same frames and timestamps)."""
    ap = argparse.ArgumentParser(prog="python -m lerobot_wds.testing.reencode", description=main.__doc__)
    ap.add_argument("src", type=Path, help="LeRobot v3 root to copy")
    ap.add_argument("dst", type=Path, help="where the copy goes (must not exist)")
    ap.add_argument("--codec", choices=ENCODERS, default="libx264", help="ffmpeg encoder")
    ap.add_argument("--gop", type=int, default=250, help="frames between keyframes at most (-g)")
    ap.add_argument("--bframes", type=int, default=2, help="consecutive B-frames (-bf)")
    ap.add_argument("--crf", type=int, default=18, help="constant rate factor (lower: closer to the source)")
    ap.add_argument("--preset", default="medium", help="encoder preset")
    ap.add_argument("--no-scenecut", action="store_true", help="keyframes exactly every --gop frames")
    ap.add_argument("--jobs", type=int, default=1, help="files encoded at a time")
    args = ap.parse_args(argv)
    try:
        settings = ReencodeSettings(
            args.codec, args.gop, args.bframes, args.crf, args.preset, not args.no_scenecut
        )
        counts = reencode_root(args.src, args.dst, settings, jobs=args.jobs, log=True)
    except (ReencodeError, ValueError, OSError) as exc:
        print(f"reencode: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst}: {counts['files']} files, {counts['frames']} frames, {counts['keyframes']} keyframes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
