"""The converter's own peak memory: the process's peak RSS since the conversion started, not since birth.

``getrusage``'s ``ru_maxrss`` is the peak over the whole process, so a conversion run inside a process that did
something big before (the demo writes its dataset and imports torch first) reported that peak as its own
(505 MB for 0.3 MB of data). On Linux the kernel's high-water mark (``VmHWM``) can be reset to the current RSS
by writing ``5`` to ``/proc/self/clear_refs``; :class:`PeakRss` does that when the conversion starts and reads
the mark at its end. Where that is not possible it falls back to ``ru_maxrss`` and says so (``since_start``).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class PeakRss:
    """Measures the peak RSS of the process from its construction on (see the module docstring)."""

    start_bytes: int = 0
    since_start: bool = False

    def __post_init__(self) -> None:
        rss = _status_kib("VmRSS")
        self.start_bytes = (rss or 0) * 1024
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.since_start = rss is not None
        except OSError:
            self.since_start = False

    def peak_bytes(self) -> int:
        """The peak RSS since construction (or over the process's life when it could not be reset)."""
        hwm = _status_kib("VmHWM") if self.since_start else None
        if hwm is not None:
            return hwm * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
