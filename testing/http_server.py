"""A loopback HTTP server that serves a directory like a bucket: ranges, throttling, faults and counters.

Used by tests (real HTTP on 127.0.0.1 instead of mocks) and by ``lerobot-wds bench --emulate-*`` to measure
remote behaviour on one machine. It supports GET and HEAD, single ``Range: bytes=`` requests (206 with
``Content-Range``; 416 when unsatisfiable), ``Accept-Ranges``/``Content-Length`` on every file response (what
fsspec's ``HTTPFileSystem`` needs to open, seek and read), HTML directory listings (for ``fs.ls``),
a first-byte latency, a per-response bandwidth cap, a required query (a signed URL's signature), injected
faults for retry tests (answer the next N requests to a path with 503 -- a burst --, or end the next N bodies
after K bytes by a cut, a connection reset or a stall), a restart (``stop()`` then ``start()`` binds the same
port again; open connections are dropped as a real restart would) and request/byte counters.

Delays are also *accounted* (``Stats.latency_s`` / ``Stats.throttle_s`` hold the delays the server
planned), so tests assert the server's own bookkeeping instead of timing anything.

This module owns the public surface: :class:`ServeConfig`, :class:`LoopbackHTTPServer`,
:func:`serve_directory` and the CLI; it re-exports :func:`parse_range`, :class:`Stats` and
:class:`RequestRecord`. How a request is answered lives in ``tools/http_handler``; fault injection and the
counters in ``tools/http_state``.

Usage::

    with serve_directory(root, latency_ms=50, bandwidth_mb_s=200) as url:
        fs.open(f"{url}/shards/shard-000000.tar")
    with LoopbackHTTPServer(root, ServeConfig(latency_ms=50)) as server:
        server.inject_fault("/shards/shard-000000.tar", fail_requests=2)
        ...
        server.stats().requests

CLI: ``python -m lerobot_wds.testing.http_server DIR --port 8000 --latency-ms 50 --bandwidth-mb-s 200``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lerobot_wds.testing.http_handler import bind_handler, parse_range
from lerobot_wds.testing.http_state import RequestRecord, ServerState, Stats

__all__ = ["LoopbackHTTPServer", "RequestRecord", "ServeConfig", "Stats", "main", "parse_range", "serve_directory"]


@dataclass(frozen=True)
class ServeConfig:
    """How the server behaves.

    Attributes:
        latency_ms: delay before the first byte of every response (emulates a bucket's time to first byte).
        bandwidth_mb_s: cap per response body in MB/s (10**6 bytes), like one connection to a bucket;
            ``None`` = unthrottled.
        host: interface to bind; loopback by default.
        port: TCP port; 0 picks a free one.
        quiet: do not log each request to stderr.
        require_query: query parameters every request must carry, e.g. ``{"sig": "..."}`` (a signed URL's
            signature); a request without them is answered 403, as a bucket answers an unsigned one.
    """

    latency_ms: float = 0.0
    bandwidth_mb_s: float | None = None
    host: str = "127.0.0.1"
    port: int = 0
    quiet: bool = True
    require_query: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if not self.latency_ms >= 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms!r}")
        if self.bandwidth_mb_s is not None and not self.bandwidth_mb_s > 0:
            raise ValueError(f"bandwidth_mb_s must be > 0 or None, got {self.bandwidth_mb_s!r}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in [0, 65535], got {self.port!r}")


class _Server(ThreadingHTTPServer):
    """Quiet about clients that go away mid-response (a killed or timed-out reader is what tests do)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset...
            super().handle_error(request, client_address)


class LoopbackHTTPServer:
    """Serves ``root`` over HTTP on a background thread; a context manager that yields itself."""

    def __init__(self, root: str | os.PathLike[str], config: ServeConfig | None = None) -> None:
        root_path = Path(root).resolve()
        if not root_path.is_dir():
            raise NotADirectoryError(f"cannot serve {str(root)!r}: not a directory")
        self._config = config or ServeConfig()
        self._state = ServerState()
        self._handler = bind_handler(root_path, self._config, self._state)
        self._httpd: ThreadingHTTPServer | None = self._bind(self._config.port)
        self._address = self._httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    def _bind(self, port: int) -> ThreadingHTTPServer:
        httpd = _Server((self._config.host, port), self._handler)  # SO_REUSEADDR: rebinds at once
        httpd.daemon_threads = True
        return httpd

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:41234``."""
        host, port = self._address
        return f"http://{host!s}:{port}"

    def start(self) -> LoopbackHTTPServer:
        """Starts serving on a daemon thread; after :meth:`stop`, on the same port again (a restart)."""
        if self._httpd is None:
            self._httpd = self._bind(int(self._address[1]))
        self._state.stopping.clear()
        # a short poll interval: stop() (and so a restart) returns within 50 ms
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="loopback-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving, closes the listening socket and drops open connections (clients see resets)."""
        if self._httpd is None:
            return
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.server_close()
        self._state.drop_connections()
        if self._thread is not None:
            self._thread.join()
        self._httpd, self._thread = None, None

    def restart(self, down_s: float = 0.0) -> None:
        """Stops, stays down ``down_s`` seconds (connections are refused), and serves the same port again."""
        self.stop()
        time.sleep(down_s)  # the outage a test asks for, not a wait for a condition
        self.start()

    def __enter__(self) -> LoopbackHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject_fault(
        self,
        path: str,
        *,
        fail_requests: int = 0,
        status: int = 503,
        cut_requests: int = 0,
        cut_after_bytes: int = 0,
        reset_requests: int = 0,
        reset_after_bytes: int = 0,
        stall_requests: int = 0,
        stall_after_bytes: int = 0,
        stall_s: float = 60.0,
    ) -> None:
        """Makes the next requests to URL ``path`` fail (replacing the path's earlier fault).

        Faults are taken in this order: the failures, then (GETs only) the cuts, the resets, the stalls.
        Content-Length always announces the full length, so a client sees a body that ends early.

        Args:
            path: URL path, e.g. ``/shards/shard-000000.tar``.
            fail_requests: answer this many next requests (any method) with ``status`` and no file data.
            status: HTTP status of those failures (503: a burst of "unavailable").
            cut_requests: cut this many GET bodies after ``cut_after_bytes`` bytes by shutting the
                connection down (FIN).
            reset_requests: reset this many GET connections after ``reset_after_bytes`` body bytes (RST).
            stall_requests: send this many GET bodies only up to ``stall_after_bytes`` and then nothing,
                until the client closes the connection (its read timed out), the server stops, or
                ``stall_s`` seconds pass; then the connection is dropped.
        """
        self._state.arm_fault(
            path,
            fail_requests=fail_requests,
            status=status,
            cut_requests=cut_requests,
            cut_after_bytes=cut_after_bytes,
            reset_requests=reset_requests,
            reset_after_bytes=reset_after_bytes,
            stall_requests=stall_requests,
            stall_after_bytes=stall_after_bytes,
            stall_s=stall_s,
        )

    def stats(self) -> Stats:
        """Returns a snapshot of the counters."""
        return self._state.snapshot()

    def reset_stats(self) -> None:
        """Zeroes the counters (faults stay armed)."""
        self._state.reset_counters()


@contextlib.contextmanager
def serve_directory(
    root: str | os.PathLike[str],
    *,
    latency_ms: float = 0.0,
    bandwidth_mb_s: float | None = None,
    config: ServeConfig | None = None,
) -> Iterator[str]:
    """Serves ``root`` on loopback for the duration of the block and yields its base URL."""
    cfg = replace(config or ServeConfig(), latency_ms=latency_ms, bandwidth_mb_s=bandwidth_mb_s)
    with LoopbackHTTPServer(root, cfg) as server:
        yield server.url


def main(argv: list[str] | None = None) -> int:
    """Serves a directory until interrupted."""
    ap = argparse.ArgumentParser(prog="python -m lerobot_wds.testing.http_server", description=main.__doc__)
    ap.add_argument("directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--latency-ms", type=float, default=0.0, help="first-byte delay per response")
    ap.add_argument("--bandwidth-mb-s", type=float, default=None, help="per-response bandwidth cap (MB/s)")
    ap.add_argument("--verbose", action="store_true", help="log every request")
    args = ap.parse_args(argv)
    cfg = ServeConfig(args.latency_ms, args.bandwidth_mb_s, args.host, args.port, quiet=not args.verbose)
    server = LoopbackHTTPServer(args.directory, cfg)
    print(
        f"serving {args.directory} at {server.url} (latency {cfg.latency_ms} ms, "
        f"bandwidth {cfg.bandwidth_mb_s or 'unlimited'} MB/s)",
        flush=True,
    )
    server.start()
    try:
        threading.Event().wait()  # until Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
