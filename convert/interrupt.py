"""Stopping a conversion cleanly on SIGTERM or SIGINT: the signal becomes an exception at the next safe point.

``lerobot-wds convert`` runs inside :func:`stop_on_signals`: a SIGTERM (preemption, ``scancel``, Kubernetes)
or SIGINT (Ctrl-C) raises :class:`Interrupted` in the main thread, the thread that writes shards. It unwinds
like any error: queued episode builds and uploads are dropped, the upload in flight finishes, the staging
directory is removed, and no manifest is written; the CLI prints one line and exits ``128 + signal`` (143 for
SIGTERM, 130 for SIGINT). Re-running the same command resumes from the shards already at the destination.

Cleanup that must not stop half-way (creating the staging directory with its owner record, removing it) runs
inside :func:`signals_deferred`: a signal arriving there is raised when the block ends. Only the main thread
receives signals; the library itself never installs handlers (only the CLI does), so an application that
calls :func:`lerobot_wds.convert.pipeline.convert` keeps its own.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# main-thread state (signal handlers only ever run in the main thread)
_deferred_depth = 0
_pending: int | None = None


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (a KeyboardInterrupt, so ``except Exception`` retry loops let it pass).

    Attributes:
        signum: The signal that stopped the run.
        shards_done: Shards of this part complete at the destination when it stopped (``None``: not known yet).
        shards_planned: Shards of this part in the plan (``None``: not planned yet).
    """

    def __init__(self, signum: int, shards_done: int | None = None, shards_planned: int | None = None) -> None:
        super().__init__(signum, shards_done, shards_planned)
        self.signum = signum
        self.shards_done = shards_done
        self.shards_planned = shards_planned

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        if self.shards_done is None or self.shards_planned is None:
            done = "before any shard was written"
        else:
            done = f"{self.shards_done} of {self.shards_planned} shards done"
        return f"interrupted by {name}, {done}; rerun the same command to resume"


def _raise_interrupted(signum: int, _frame: object) -> None:
    global _pending
    if _deferred_depth:
        _pending = _pending or signum
        return
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def stop_on_signals(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """Raises :class:`Interrupted` in the main thread on ``signals`` during the block; restores the old handlers.

    Called from another thread it does nothing (Python delivers signals to the main thread only).
    """
    if not _in_main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Holds back :class:`Interrupted` until the block ends; raised then unless an exception is already unwinding.

    An exception already on its way out (the run is stopping anyway) is not replaced by the held-back signal.
    """
    global _deferred_depth, _pending
    if not _in_main_thread():
        yield
        return
    _deferred_depth += 1
    try:
        yield
    finally:
        _deferred_depth -= 1
        if not _deferred_depth and _pending is not None:
            signum, _pending = _pending, None
            if sys.exc_info()[1] is None:
                raise Interrupted(signum)
