"""Findings of ``verify`` and the report that collects them: where a problem is, which check found it, what.

A :class:`Finding` names its location as precisely as the check knows it (shard, episode, camera, member);
the :class:`Report` renders one line per finding for people and a JSON document for scripts. ``ok`` is true
only when there is no finding, so a report never hides a problem behind a summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from lerobot_wds.core.redact import redact_text, redact_url


@dataclass(frozen=True)
class Finding:
    """One problem: the check that found it, where it is, and what was expected vs found.

    Attributes:
        check: Short name of the check, e.g. ``sha256``, ``missing-member``, ``decode``.
        message: What was expected and what was found.
        shard: The shard's path relative to the root (``shards/shard-000000.tar``), if known.
        episode: The episode index, if the problem belongs to one episode.
        camera: The camera key, if the problem belongs to one camera.
        member: The tar member name, if the problem belongs to one member.
    """

    check: str
    message: str
    shard: str | None = None
    episode: int | None = None
    camera: str | None = None
    member: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", redact_text(self.message))  # reports get pasted: no credentials

    def where(self) -> str:
        """Returns the location as ``shard S, episode E, camera C, member M`` (known parts only)."""
        parts = []
        if self.shard is not None:
            parts.append(f"shard {self.shard}")
        if self.episode is not None:
            parts.append(f"episode {self.episode}")
        if self.camera is not None:
            parts.append(f"camera {self.camera}")
        if self.member is not None:
            parts.append(f"member {self.member}")
        return ", ".join(parts) or "root"

    def line(self) -> str:
        return f"{self.where()}: [{self.check}] {self.message}"


@dataclass
class Report:
    """Everything ``verify`` found, plus counters of what it looked at.

    ``root`` and ``source`` are kept without credentials (:func:`redact_url`): a report is printed, written as
    JSON and pasted into bug reports, whoever builds it.
    """

    root: str
    findings: list[Finding] = field(default_factory=list)
    shards: int = 0
    episodes: int = 0
    frames: int = 0
    bytes: int = 0
    decoded_frames: int = 0
    source: str | None = None
    psnr_db: tuple[float, float] | None = None  # (smallest, mean) against the source, for a re-encoded root

    def __post_init__(self) -> None:
        self.root = redact_url(self.root)
        self.source = None if self.source is None else redact_url(self.source)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    def summary(self) -> str:
        status = "OK" if self.ok else f"FAILED: {len(self.findings)} problem(s)"
        checked = (
            f"{self.shards} shards, {self.episodes} episodes, {self.frames} frames, {self.bytes / 1e6:.1f} MB"
        )
        extra = (
            f", {self.decoded_frames} frames decoded and compared with the source" if self.decoded_frames else ""
        )
        if self.psnr_db is not None:
            extra += f" (re-encoded: PSNR min {self.psnr_db[0]:.2f} dB, mean {self.psnr_db[1]:.2f} dB)"
        against = f" against {self.source}" if self.source else ""
        return f"verify {self.root}{against}: {status} ({checked}{extra})"

    def to_text(self) -> str:
        return "\n".join([*(f.line() for f in self.findings), self.summary()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "source": self.source,
            "ok": self.ok,
            "shards": self.shards,
            "episodes": self.episodes,
            "frames": self.frames,
            "bytes": self.bytes,
            "decoded_frames": self.decoded_frames,
            "psnr_db": None if self.psnr_db is None else {"min": self.psnr_db[0], "mean": self.psnr_db[1]},
            "findings": [{**asdict(f), "where": f.where()} for f in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)
