"""Keeps asyncio's "exception was never retrieved" reports out of every CLI's output.

aiohttp (under s3fs, gcsfs) leaves such a report behind, with a traceback, when a connection is reset
mid-request: that request already failed and was retried, and if it kept failing the command reports it as one
line. Installed by :func:`~lerobot_wds.tools.process_exit.run_main`, which every entry point runs (the
``lerobot-wds`` console script and ``python -m lerobot_wds.tools.train.cli``), so ``convert``, ``verify``,
``bench``, ``inspect`` and ``train`` reading a bucket print no such traceback; a library import installs nothing.
Reports of any other exception (a bug) still print.
"""

from __future__ import annotations

import logging

__all__ = ["quiet_unretrieved_async_errors"]

_REPORTS = ("Task exception was never retrieved", "Future exception was never retrieved")


class _UnretrievedAsyncErrors(logging.Filter):
    """Drops a report only when its exception is a transient I/O error (the retry policy's classification)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(_REPORTS) or not record.exc_info:
            return True
        from lerobot_wds.core.retry import is_transient

        exc = record.exc_info[1]
        return exc is None or not is_transient(exc)  # a bug (a ValueError, say) is still reported


def quiet_unretrieved_async_errors() -> None:
    """Adds the filter to the ``asyncio`` logger (once; DataLoader workers forked later inherit it)."""
    log = logging.getLogger("asyncio")
    if not any(isinstance(f, _UnretrievedAsyncErrors) for f in log.filters):
        log.addFilter(_UnretrievedAsyncErrors())
