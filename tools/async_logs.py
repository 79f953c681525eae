"""Keeps asyncio's "exception was never retrieved" reports out of every CLI's output.

aiohttp (under s3fs, gcsfs) leaves such a report behind, with a traceback, when a connection is reset
mid-request: that request already failed and was retried, and if it kept failing the command reports it as one
line. Installed by the ``lerobot-wds`` console script before any subcommand runs, so ``convert``, ``verify``,
``bench``, ``inspect`` and ``train`` reading a bucket print no traceback; a library import installs nothing.
"""

from __future__ import annotations

import logging

__all__ = ["quiet_unretrieved_async_errors"]

_REPORTS = ("Task exception was never retrieved", "Future exception was never retrieved")


class _UnretrievedAsyncErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_REPORTS)


def quiet_unretrieved_async_errors() -> None:
    """Adds the filter to the ``asyncio`` logger (once; DataLoader workers forked later inherit it)."""
    log = logging.getLogger("asyncio")
    if not any(isinstance(f, _UnretrievedAsyncErrors) for f in log.filters):
        log.addFilter(_UnretrievedAsyncErrors())
