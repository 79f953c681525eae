"""A loopback HTTP server that serves a directory like a bucket: ranges, throttling, faults and counters.

Used by tests (real HTTP on 127.0.0.1 instead of mocks) and by ``lerobot-wds bench --emulate-*`` to measure
remote behaviour on one machine. It supports GET and HEAD, single ``Range: bytes=`` requests (206 with
``Content-Range``; 416 when unsatisfiable), ``Accept-Ranges``/``Content-Length`` on every file response (what
fsspec's ``HTTPFileSystem`` needs to open, seek and read), HTML directory listings (for ``fs.ls``),
a first-byte latency, a per-response bandwidth cap, injected faults for retry tests (answer the next N
requests to a path with 503, or cut the body after K bytes) and request/byte counters.

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
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import ThreadingHTTPServer
from pathlib import Path

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
    """

    latency_ms: float = 0.0
    bandwidth_mb_s: float | None = None
    host: str = "127.0.0.1"
    port: int = 0
    quiet: bool = True

    def __post_init__(self) -> None:
        if not self.latency_ms >= 0:
            raise ValueError(f"latency_ms must be >= 0, got {self.latency_ms!r}")
        if self.bandwidth_mb_s is not None and not self.bandwidth_mb_s > 0:
            raise ValueError(f"bandwidth_mb_s must be > 0 or None, got {self.bandwidth_mb_s!r}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be in [0, 65535], got {self.port!r}")


class LoopbackHTTPServer:
    """Serves ``root`` over HTTP on a background thread; a context manager that yields itself."""

    def __init__(self, root: str | os.PathLike[str], config: ServeConfig | None = None) -> None:
        root_path = Path(root).resolve()
        if not root_path.is_dir():
            raise NotADirectoryError(f"cannot serve {str(root)!r}: not a directory")
        self._config = config or ServeConfig()
        self._state = ServerState()
        handler = bind_handler(root_path, self._config, self._state)
        self._httpd = ThreadingHTTPServer((self._config.host, self._config.port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:41234``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LoopbackHTTPServer:
        """Starts serving on a daemon thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

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
    ) -> None:
        """Makes the next requests to URL ``path`` fail.

        Args:
            path: URL path, e.g. ``/shards/shard-000000.tar``.
            fail_requests: answer this many next requests (any method) with ``status`` and no file data.
            status: HTTP status of those failures.
            cut_requests: after those, cut this many GET bodies after ``cut_after_bytes`` bytes and drop the
                connection (Content-Length still announces the full length).
            cut_after_bytes: bytes sent before a cut.
        """
        self._state.arm_fault(
            path,
            fail_requests=fail_requests,
            status=status,
            cut_requests=cut_requests,
            cut_after_bytes=cut_after_bytes,
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
    try:
        server._httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
