"""Ends a CLI process with its exit code and nothing after it: no native thread can abort the exit.

Python's interpreter teardown runs C++ static destructors of the libraries it loaded. pyarrow's parquet
reader leaves IO / CPU pool threads behind (one ``pq.read_table`` starts two or three), and when one of them
is still joinable while its pool is destroyed, libstdc++ calls ``std::terminate``: "terminate called without
an active exception", exit 134, after the command had printed its verdict (about 1 run of 10 of ``verify``).
Nothing in pyarrow's public API joins those pools, so a finished command runs the ``atexit`` handlers
(multiprocessing's finalizers, logging, tqdm), flushes its streams and leaves with ``os._exit``: the
exit code is the command's, always.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable

BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE, what a shell tool killed by a closed pipe exits with


def exit_with(code: int) -> None:
    """Runs atexit handlers, flushes stdout/stderr and ends the process with ``code``, skipping teardown."""
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream must not change the exit code
                pass
        os._exit(code)


def run_main(main: Callable[[], int | None]) -> None:
    """Calls ``main()`` and exits with its return value (``SystemExit`` codes, e.g. argparse's 2, kept; a
    closed stdout pipe ends quietly with 141, as SIGPIPE ends ``yes | head``).

    Before ``main()`` it quiets asyncio's reports of transient I/O errors nobody retrieved (:mod:`async_logs`)
    and makes stdout and stderr drop credentials from every URL written to them (:mod:`redacted_output`).
    """
    from lerobot_wds.tools.async_logs import quiet_unretrieved_async_errors
    from lerobot_wds.tools.redacted_output import redact_process_output

    quiet_unretrieved_async_errors()
    redact_process_output()  # no URL credential in anything printed or logged
    try:
        code = int(main() or 0)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # the reader of stdout went away (``| head``): end quietly, as SIGPIPE would
        _drop_stdout()
        code = BROKEN_PIPE_EXIT
    exit_with(code)


def _drop_stdout() -> None:
    """Points stdout at /dev/null so flushing what is left of it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
