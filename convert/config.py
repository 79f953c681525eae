"""The converter's configuration: one frozen dataclass, validated on construction.

The CLI builds a :class:`ConvertConfig` and keeps no defaults of its own; every default lives here.
Only the fields listed in :meth:`ConvertConfig.output_options` change the bytes written, so those (and
nothing else) are recorded in the manifest: workers, staging directory or the part split never do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from lerobot_wds.convert.errors import ConfigError
from lerobot_wds.convert.mp4.reencode import DEFAULT_GOP, EncodeSettings, ReencodeCodec, require_encoder
from lerobot_wds.core.errors import OnError

# Parsed MP4 indexes cost about 60 bytes a frame: 256 MiB holds the indexes of 4.4 million frames.
DEFAULT_INDEX_CACHE_BYTES = 256 << 20

EpisodeOrder = Literal["source", "shuffle"]
ResumeCheck = Literal["size", "sha256"]

# Readers plan by episode and GET at most StreamConfig.max_read_bytes (64 MiB) at a time, holding the current
# and the next read: at 64 MiB a reader that owns a shard reads it with one GET, a worker's read buffers stay
# within 128 MiB, and each GET is long enough that a 50 ms first byte costs ~13% of it at 200 MB/s.
DEFAULT_TARGET_SHARD_BYTES = 64 * 1024 * 1024


def _check_choice(name: str, value: object, literal: object) -> None:
    choices = get_args(literal)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


@dataclass(frozen=True)
class ConvertConfig:
    """Everything one converter run (or one part of an array job) needs.

    Attributes:
        source: Root of the LeRobot v3 dataset: a local path or fsspec URL (``hf://datasets/<repo>@<rev>``,
            ``hf://buckets/<owner>/<bucket>/<prefix>``, ``s3://...``, ``http(s)://...``).
        dest: Output root: a local path or fsspec URL.
        target_shard_bytes: Shards are filled with whole episodes until their estimated size would exceed
            this; a single larger episode still gets a shard of its own.
        episodes: Convert only these episode indices (``None``: all).
        order: ``shuffle`` (the default) spreads episodes over shards in a random order derived from ``seed``,
            so that the episodes a reader owns are a random sample of the dataset rather than a run of
            neighbours (LeRobot datasets are recorded task by task); ``source`` keeps the source's episode order.
        seed: Seed of the episode shuffle (the same seed gives the same shards).
        workers: Threads reading rows and remuxing videos.
        part_index: This process converts the shards with ``index % part_count == part_index``.
        part_count: Number of parts (1: a single run that also writes the manifest).
        on_error: ``raise`` stops on the first bad episode; ``skip`` records it in the manifest and goes on.
        staging_dir: Local directory for shards being written or uploaded (``None``: the system temp dir).
        max_staged_shards: Shards allowed on local disk at once (one being written, the rest uploading).
        upload_attempts: Attempts per upload or source read before a transient error becomes fatal.
        retry_backoff_s: Bound of the first retry's (random, full-jitter) delay; it doubles on every further one.
        resume_check: How a shard already at the destination is verified before it is skipped: ``size``
            compares its size with its completion record, ``sha256`` also re-hashes it.
        lookahead_episodes: Episodes built ahead of the writer (bounds memory); ``0`` means ``2 * workers``.
        index_cache_bytes: Bytes of parsed source MP4 indexes kept in memory (about 60 a frame); while a part's
            camera files' indexes fit, each is parsed once.
        progress: Show progress (a bar on a terminal, else a plain line every few seconds).
        source_options: fsspec storage options for the source filesystem.
        dest_options: fsspec storage options for the destination filesystem.
        reencode: ``None`` (the default) copies encoded samples; ``av1`` or ``h264`` decodes each episode's
            camera stream and encodes its frames again with a short GOP (see :mod:`convert.mp4.reencode`).
        reencode_gop: Frames between keyframes of the re-encode (default 2, lerobot's own).
    """

    source: str
    dest: str
    target_shard_bytes: int = DEFAULT_TARGET_SHARD_BYTES
    episodes: tuple[int, ...] | None = None
    order: EpisodeOrder = "shuffle"
    seed: int = 0
    workers: int = field(default_factory=lambda: min(8, os.cpu_count() or 1))
    part_index: int = 0
    part_count: int = 1
    on_error: OnError = "raise"
    staging_dir: str | None = None
    max_staged_shards: int = 2
    upload_attempts: int = 6
    retry_backoff_s: float = 0.5
    resume_check: ResumeCheck = "size"
    lookahead_episodes: int = 0
    index_cache_bytes: int = DEFAULT_INDEX_CACHE_BYTES
    progress: bool = True
    source_options: dict[str, Any] = field(default_factory=dict)
    dest_options: dict[str, Any] = field(default_factory=dict)
    reencode: ReencodeCodec | None = None
    reencode_gop: int | None = None

    def __post_init__(self) -> None:
        if not self.source:
            raise ConfigError("source must be a path or URL, got an empty string")
        if not self.dest:
            raise ConfigError("dest must be a path or URL, got an empty string")
        if self.target_shard_bytes < 1:
            raise ConfigError(f"target_shard_bytes must be >= 1, got {self.target_shard_bytes}")
        if self.episodes is not None:
            if not self.episodes:
                raise ConfigError("episodes must name at least one episode (or be None for all)")
            bad = [e for e in self.episodes if not isinstance(e, int) or e < 0]
            if bad:
                raise ConfigError(f"episodes must be non-negative integers, got {bad}")
            dupes = sorted({e for e in self.episodes if self.episodes.count(e) > 1})
            if dupes:
                raise ConfigError(f"episodes lists these indices more than once: {dupes}")
        _check_choice("order", self.order, EpisodeOrder)
        _check_choice("on_error", self.on_error, OnError)
        _check_choice("resume_check", self.resume_check, ResumeCheck)
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.part_count < 1:
            raise ConfigError(f"part_count must be >= 1, got {self.part_count}")
        if not 0 <= self.part_index < self.part_count:
            raise ConfigError(f"part_index must be in [0, {self.part_count}), got {self.part_index}")
        if self.max_staged_shards < 1:
            raise ConfigError(f"max_staged_shards must be >= 1, got {self.max_staged_shards}")
        if self.upload_attempts < 1:
            raise ConfigError(f"upload_attempts must be >= 1, got {self.upload_attempts}")
        if self.retry_backoff_s < 0:
            raise ConfigError(f"retry_backoff_s must be >= 0, got {self.retry_backoff_s}")
        if self.lookahead_episodes < 0:
            raise ConfigError(f"lookahead_episodes must be >= 0, got {self.lookahead_episodes}")
        if self.index_cache_bytes < 1:
            raise ConfigError(f"index_cache_bytes must be >= 1, got {self.index_cache_bytes}")
        if self.reencode_gop is not None and self.reencode is None:
            raise ConfigError(f"reencode_gop={self.reencode_gop} needs reencode (av1 or h264)")
        settings = self.encode_settings()  # validates reencode / reencode_gop
        if settings is not None:
            require_encoder(settings.encoder)

    def encode_settings(self) -> EncodeSettings | None:
        """Returns how episodes are encoded again, or None when encoded samples are copied."""
        if self.reencode is None:
            return None
        return EncodeSettings(self.reencode, DEFAULT_GOP if self.reencode_gop is None else self.reencode_gop)

    @property
    def lookahead(self) -> int:
        """Episodes in flight between the worker pool and the tar writer."""
        return self.lookahead_episodes or 2 * self.workers

    def output_options(self) -> dict[str, Any]:
        """Returns the options that determine the output bytes; they are recorded in the manifest.

        ``reencode`` (the encoder settings) is listed only when set, so copying conversions keep their options.
        """
        options: dict[str, Any] = {
            "target_shard_bytes": self.target_shard_bytes,
            "episodes": None if self.episodes is None else list(self.episodes),
            "order": self.order,
            "seed": self.seed,
            "on_error": self.on_error,
        }
        settings = self.encode_settings()
        if settings is not None:
            options["reencode"] = settings.options()
        return options


def parse_part(text: str, environ: dict[str, str] | os._Environ[str] | None = None) -> tuple[int, int]:
    """Parses ``--part``: ``I/N`` or ``auto`` (from SLURM array variables) into ``(index, count)``.

    ``auto`` reads ``SLURM_ARRAY_TASK_ID`` minus ``SLURM_ARRAY_TASK_MIN`` (default 0) and
    ``SLURM_ARRAY_TASK_COUNT``; outside an array job it is an error rather than a silent single part.
    """
    env = os.environ if environ is None else environ
    if text == "auto":
        missing = [k for k in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT") if k not in env]
        if missing:
            raise ConfigError(f"--part auto needs the SLURM array variables {missing}; pass --part I/N instead")
        try:
            task_id = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        except ValueError as e:
            raise ConfigError(f"--part auto: SLURM array variables are not integers: {e}") from e
        return task_id, count
    first, sep, second = text.partition("/")
    if not sep or not first.strip().isdigit() or not second.strip().isdigit():
        raise ConfigError(f"--part must be 'I/N' (e.g. 0/4) or 'auto', got {text!r}")
    return int(first), int(second)


def parse_size(text: str) -> int:
    """Parses a byte size such as ``512MB``, ``1.5GiB``, ``64k`` or ``1000`` (decimal and binary units)."""
    units = {
        "": 1,
        "b": 1,
        "k": 1000,
        "kb": 1000,
        "kib": 1024,
        "m": 1000**2,
        "mb": 1000**2,
        "mib": 1024**2,
        "g": 1000**3,
        "gb": 1000**3,
        "gib": 1024**3,
        "t": 1000**4,
        "tb": 1000**4,
        "tib": 1024**4,
    }
    s = text.strip().lower()
    num = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(num) :].strip()
    try:
        value = float(num)
    except ValueError:
        raise ConfigError(f"size must look like 512MB or 1GiB, got {text!r}") from None
    if unit not in units:
        raise ConfigError(f"size unit {unit!r} in {text!r} is not one of {sorted(u for u in units if u)}")
    return int(value * units[unit])


def parse_episodes(text: str) -> tuple[int, ...]:
    """Parses ``--episodes``: comma-separated indices and inclusive ranges, e.g. ``0,3,10-19``."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ConfigError(f"--episodes must look like 0,3,10-19, got {text!r} (bad item {part!r})")
        if sep and int(hi) < int(lo):
            raise ConfigError(f"--episodes range {part!r} ends before it starts")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return tuple(out)
