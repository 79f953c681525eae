"""A process's peak RSS (the converter's summary): measured from a start its owner chose, or over its life.

``getrusage``'s ``ru_maxrss`` is the peak over the whole process, so a conversion run inside a process that did
something big before (the demo writes its dataset and imports torch first) would report that peak as its own.
On Linux the kernel's high-water mark (``VmHWM``) can be reset to the current RSS by writing ``5`` to
``/proc/self/clear_refs``; that counter is the process's, so only its owner (the ``convert`` command, the demo)
asks for the reset (``PeakRss(reset=True)``). ``convert()`` called as a library leaves the caller's counter as it
is and reports the process's peak (``since_start`` False).
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
    """The peak RSS of the process: since construction when ``reset`` (and the kernel allows it), else overall.

    Attributes:
        reset: Reset the process's high-water mark at construction (only the process's owner should).
        start_bytes: The RSS at construction.
        since_start: Whether :meth:`peak_bytes` counts from construction (the mark was reset).
    """

    reset: bool = False
    start_bytes: int = 0
    since_start: bool = False

    def __post_init__(self) -> None:
        hwm = None
        if self.reset:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current RSS
                hwm = _status_kib("VmHWM")  # the RSS at the reset: the start, and where the mark climbs from
            except OSError:
                hwm = None
        self.since_start = hwm is not None
        start = hwm if hwm is not None else _status_kib("VmRSS")
        self.start_bytes = (start or 0) * 1024

    def peak_bytes(self) -> int:
        """The peak RSS since construction when the mark was reset, else over the process's life."""
        hwm = _status_kib("VmHWM")
        if hwm is not None:
            return hwm * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
