"""The console scripts' asyncio log filter: drops unretrieved transient I/O errors, keeps every other report."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from lerobot_wds.tools.async_logs import quiet_unretrieved_async_errors


def _record(message: str, exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, exc_info)


@pytest.mark.parametrize(
    ("message", "exc", "kept"),
    [
        ("Task exception was never retrieved", ConnectionResetError(104, "reset by peer"), False),
        ("Future exception was never retrieved", TimeoutError("stalled"), False),
        ("Task exception was never retrieved", ValueError("a bug"), True),
        ("Task exception was never retrieved", None, True),
        ("Unclosed client session", ConnectionResetError(104, "reset by peer"), True),
    ],
)
def test_only_unretrieved_transient_errors_are_dropped(
    message: str, exc: BaseException | None, kept: bool
) -> None:
    log = logging.getLogger("asyncio")
    before = list(log.filters)
    try:
        quiet_unretrieved_async_errors()
        quiet_unretrieved_async_errors()  # once only
        assert len(log.filters) == len(before) + 1
        assert bool(log.filter(_record(message, exc))) is kept
    finally:
        log.filters[:] = before


def test_run_main_installs_it_for_every_entry_point() -> None:
    """``lerobot-wds`` and ``python -m lerobot_wds.tools.train.cli`` both end through run_main."""
    code = (
        "import asyncio, logging, sys\n"
        "from lerobot_wds.tools.process_exit import run_main\n"
        "async def lost():\n"
        "    raise ConnectionResetError(104, 'reset by peer')\n"
        "async def bug():\n"
        "    raise ValueError('a bug')\n"
        "def main():\n"
        "    logging.basicConfig()\n"
        "    loop = asyncio.new_event_loop()\n"
        "    for coro in (lost(), bug()):\n"
        "        task = loop.create_task(coro)\n"
        "        loop.run_until_complete(asyncio.sleep(0.01))\n"
        "        del task, coro\n"  # dropped unretrieved: asyncio reports it when the task is collected
        "    import gc; gc.collect()\n"
        "    return 0\n"
        "run_main(main)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ConnectionResetError" not in proc.stderr
    assert proc.stderr.count("Task exception was never retrieved") == 1 and "ValueError: a bug" in proc.stderr
