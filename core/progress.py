"""Progress of a long command: a tqdm bar on a terminal, plain periodic lines anywhere else.

A bar redraws itself with carriage returns and escape codes, which a redirected log (CI, SLURM, ``2> log``)
keeps as garbage. :class:`Progress` draws the bar only when its stream is a terminal; otherwise it writes one
plain line every ``every_s`` seconds and a last one on :meth:`Progress.close`, e.g.
``convert: 1200/10000 episodes (12%), 35.0 episodes/s, eta 4m10s, 34s elapsed``; the environment variable
``LEROBOT_WDS_PROGRESS_EVERY_S`` sets how often (0: at every step). Every command that shows progress
(convert, verify, bench) uses it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from lerobot_wds.core.errors import InputError

DEFAULT_EVERY_S = 10.0  # a plain line this often: readable in a log, and frequent enough to see a run move
EVERY_S_ENV = "LEROBOT_WDS_PROGRESS_EVERY_S"
NO_PROGRESS_HELP = f"no progress (by default a bar on a terminal, else a line every ${EVERY_S_ENV}, 10, seconds)"


def every_s_from_env() -> float:
    """Seconds between plain lines: ``$LEROBOT_WDS_PROGRESS_EVERY_S`` if set, else :data:`DEFAULT_EVERY_S`.

    Raises:
        InputError: the variable is set to something other than a number >= 0.
    """
    text = os.environ.get(EVERY_S_ENV)
    if text is None or not text.strip():
        return DEFAULT_EVERY_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise InputError(f"{EVERY_S_ENV}={text!r}: expected seconds between progress lines, a number >= 0")
    return value


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or odd stream counts as not one)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _amount(n: float, unit: str, scale: bool) -> str:
    if not scale:
        return f"{n:.0f}"
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.1f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


class Progress:
    """Counts work done out of ``total`` and shows it (see the module docstring); thread-safe.

    Args:
        total: The amount of work, None when unknown.
        desc: What is counted, first on every line (``convert``, ``verify``...).
        unit: The unit's name (``episodes``, ``B``).
        enabled: False shows nothing (``--no-progress``).
        unit_scale: Show amounts with k/M/G prefixes (bytes).
        stream: Where to write; stderr by default.
        every_s: Seconds between plain lines; by default :func:`every_s_from_env`.
        clock: The time source, monotonic seconds.
    """

    def __init__(
        self,
        total: float | None,
        desc: str,
        unit: str,
        *,
        enabled: bool = True,
        unit_scale: bool = False,
        stream: TextIO | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.desc, self.unit, self._scale = desc, unit, unit_scale
        self._stream = stream if stream is not None else sys.stderr
        self._clock, self._every_s = clock, every_s if every_s is not None else every_s_from_env()
        self._lock = threading.Lock()
        self._n: float = 0
        self._shown: float = 0  # the work done as of the last plain line
        self._total = total
        self._start = self._last = clock()
        self._closed = not enabled
        self._bar: Any = None
        if enabled and is_terminal(self._stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=self._stream)

    @property
    def n(self) -> float:
        """The work done so far."""
        return self._n

    @property
    def total(self) -> float | None:
        return self._total

    @total.setter
    def total(self, value: float | None) -> None:
        with self._lock:
            self._total = value
            if self._bar is not None:
                self._bar.total = value
                self._bar.refresh()

    def update(self, n: float = 1) -> None:
        """Adds ``n`` to the work done (negative to take back work that is redone)."""
        with self._lock:
            self._add(n)

    def update_to(self, n: float) -> None:
        """Sets the work done to ``n``."""
        with self._lock:
            self._add(n - self._n)

    def _add(self, n: float) -> None:
        self._n += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self._closed and self._n != self._shown and self._clock() - self._last >= self._every_s:
            self._write()

    def line(self) -> str:
        """The plain line for the work done so far."""
        n, total = self._n, self._total
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = n / elapsed
        unit = "" if self._scale else f" {self.unit}"
        done = _amount(n, self.unit, self._scale)
        if total:
            text = f"{self.desc}: {done}/{_amount(total, self.unit, self._scale)}{unit} ({100 * n / total:.0f}%)"
        else:
            text = f"{self.desc}: {done}{unit}"
        text += f", {_amount(rate, self.unit, True) if self._scale else f'{rate:.1f}'}{unit}/s"
        if total and rate > 0 and n < total:
            text += f", eta {_duration((total - n) / rate)}"
        return text + f", {_duration(elapsed)} elapsed"

    def _write(self) -> None:
        self._last, self._shown = self._clock(), self._n
        print(self.line(), file=self._stream, flush=True)

    def close(self) -> None:
        """Ends the display: closes the bar, or writes the last plain line (unless the last one says it all)."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            elif not self._closed and self._n != self._shown:
                self._write()
            self._closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
