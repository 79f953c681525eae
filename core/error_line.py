"""The one line a CLI prints for an error, wherever it was raised: a DataLoader worker's error loses torch's
multi-line wrapper ("Caught ... in DataLoader worker process N. Original Traceback ...") and keeps its own
message, with the worker named."""

from __future__ import annotations

import re

_WORKER = re.compile(r"Caught (\w+) in DataLoader worker process (\d+)\.")
_LAST = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*: (.*)$")  # "package.module.ErrorType: message"


def error_line(exc: BaseException) -> str:
    """``str(exc)`` on one line; for an error re-raised from a DataLoader worker, the worker's own message and
    ``(DataLoader worker N)``."""
    text = str(exc)
    worker = _WORKER.search(text)
    if worker is not None:
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1].strip() if lines else ""
        match = _LAST.match(last)
        message = match.group(1) if match else last
        return f"{message} (DataLoader worker {worker.group(2)})"
    return " ".join(text.split()) if "\n" in text else text
