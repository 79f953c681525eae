"""A CLI process's stdout and stderr, with credentials removed from every URL written to them.

The error root already redacts domain errors' messages (:mod:`lerobot_wds.core.redact`); this is the net
under everything else a command prints: log lines (including third-party libraries' ones that quote a URL),
progress bars, warnings and the command's own lines that echo an argument such as ``DEST``.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from lerobot_wds.core.redact import redact_text


class RedactedStream:
    """A text stream that writes through to ``inner`` with every URL redacted; all else is delegated."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(redact_text(text))
        return len(text)  # callers count what they gave, not what was written

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def redact_process_output() -> None:
    """Wraps ``sys.stdout`` and ``sys.stderr`` (once) so nothing this process prints carries a credential."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactedStream):
            setattr(sys, name, RedactedStream(stream))
