"""Owner records of staging directories, and sweeping the ones whose owner was killed.

A run that is killed with SIGKILL (preemption, OOM killer) cannot remove its staging directory, which may
hold up to ``max_staged_shards`` whole shards; over many preemptions node-local disk fills up. Every staging
directory therefore records its owner (host, pid and process start time) in :data:`OWNER_FILE`, and a new run
removes sibling staging directories whose owner is on this host and provably dead: its pid is gone, a zombie,
or now belongs to a process started at another time (a reused pid). A directory whose owner is alive, on
another host, unknown (no or unreadable owner file) or another user is never touched.

The owner record is written just after the directory is created, so a run killed in between (or while
removing its directory) would leave a directory without one. The directory's name therefore carries its
owner from the first moment (:func:`staging_prefix`: a tag of the host and the pid); without a record, a
directory so named is swept when that pid is gone, a zombie, or belongs to a process started after the
directory was last modified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

STAGING_PREFIX = "lerobot-wds-staging-"
OWNER_FILE = "owner.json"
# psutil derives start times from clock ticks (10 ms); a larger gap means another process holds the pid
_START_TOLERANCE_S = 0.05
# unowned directories already reported by this process (a process may start many runs in one base dir)
_reported_unowned: set[str] = set()


@dataclass(frozen=True)
class Owner:
    """The process that created a staging directory."""

    host: str
    pid: int
    start_time: float  # seconds since the epoch, as psutil.Process.create_time()

    @classmethod
    def current(cls) -> Owner:
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    def to_json_bytes(self) -> bytes:
        return json.dumps({"host": self.host, "pid": self.pid, "start_time": self.start_time}).encode()

    @classmethod
    def read(cls, directory: Path) -> Owner | None:
        """The owner recorded in ``directory``, or ``None`` when there is no readable, well-formed record."""
        try:
            d = json.loads((directory / OWNER_FILE).read_bytes())
            owner = cls(str(d["host"]), int(d["pid"]), float(d["start_time"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return owner

    def is_dead(self) -> bool:
        """True only when the owner is on this host and provably gone; unsure (e.g. access denied) is alive."""
        if self.host != socket.gethostname():
            return False
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True  # killed, only not reaped by its parent yet: it will never touch the directory
            return abs(proc.create_time() - self.start_time) > _START_TOLERANCE_S
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            return False


def _host_tag(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:8]


def staging_prefix() -> str:
    """The name prefix of this process's staging directories: ``lerobot-wds-staging-<host tag>-<pid>-``."""
    return f"{STAGING_PREFIX}{_host_tag(socket.gethostname())}-{os.getpid()}-"


def _named_owner_is_dead(d: Path) -> bool:
    """For a directory without an owner record: True when its name says this host and a pid provably gone."""
    parts = d.name[len(STAGING_PREFIX) :].split("-")  # <host tag>-<pid>-<mkdtemp's suffix: no dash>
    if len(parts) != 3 or parts[0] != _host_tag(socket.gethostname()) or not parts[1].isdigit():
        return False
    try:
        modified = d.stat().st_mtime
        proc = psutil.Process(int(parts[1]))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        # the creator started before it made (and last changed) the directory: a later start is a reused pid
        return proc.create_time() > modified + _START_TOLERANCE_S
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError):
        return False


def write_owner(directory: Path) -> None:
    """Records this process as the owner of ``directory`` (atomically: a sweeper never reads half a file)."""
    tmp = directory / f".{OWNER_FILE}.tmp"
    tmp.write_bytes(Owner.current().to_json_bytes())
    os.replace(tmp, directory / OWNER_FILE)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep removed and what it left alone."""

    removed: tuple[Path, ...]
    freed_bytes: int
    kept_unowned: tuple[Path, ...]


def sweep_stale(base: Path, *, keep: Path | None = None) -> SweepResult:
    """Removes ``base``'s staging directories whose owner is provably dead; logs each removal and its bytes.

    Args:
        base: The directory holding ``lerobot-wds-staging-*`` directories.
        keep: A directory never to remove (the caller's own).
    """
    removed: list[Path] = []
    unowned: list[Path] = []
    freed = 0
    for d in sorted(base.glob(f"{STAGING_PREFIX}*")):
        if d == keep or not d.is_dir() or d.is_symlink():
            continue
        try:
            uid = d.stat().st_uid
        except FileNotFoundError:
            continue  # removed meanwhile by another run's sweep
        if uid != os.getuid():
            continue  # another user's run: with /proc mounted hidepid its live processes look dead to us
        owner = Owner.read(d)
        if owner is None and not _named_owner_is_dead(d):
            unowned.append(d)
            continue
        if owner is not None and not owner.is_dead():
            continue
        nbytes = _tree_bytes(d)
        shutil.rmtree(d, ignore_errors=True)  # another run sweeping at the same time may remove files first
        who = f"pid {owner.pid} on {owner.host}" if owner else f"pid {d.name.split('-')[-2]}, no owner record"
        if d.exists():
            log.warning("could not fully remove stale staging dir %s of dead %s", d, who)
            continue
        removed.append(d)
        freed += nbytes
        # warning, not info: the CLI configures no logging, and a leaked staging dir means a run was killed
        log.warning("removed staging dir %s left by killed run (%s): %d bytes freed", d, who, nbytes)
    _report_unowned(base, unowned)
    return SweepResult(tuple(removed), freed, tuple(unowned))


def _report_unowned(base: Path, unowned: list[Path]) -> None:
    """One warning per process for the unowned dirs not reported yet (each run of a test session sweeps)."""
    new = [d for d in unowned if str(d) not in _reported_unowned]
    if not new:
        return
    _reported_unowned.update(str(d) for d in new)
    names = ", ".join(d.name for d in new[:5]) + (", ..." if len(new) > 5 else "")
    log.warning(
        "leaving %d staging dir(s) in %s alone: no owner record (left by an older version, or being "
        "created right now): %s",
        len(new),
        base,
        names,
    )


def _tree_bytes(d: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(d):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass  # removed meanwhile by a concurrent sweep
    return total
