"""A loopback HTTP server that serves a directory like a bucket: ranges, throttling, faults and counters.

Used by tests (real HTTP on 127.0.0.1 instead of mocks) and by ``lerobot-wds bench --emulate-*`` to measure
remote behaviour on one machine. It supports GET and HEAD, single ``Range: bytes=`` requests (206 with
``Content-Range``; 416 when unsatisfiable), ``Accept-Ranges``/``Content-Length`` on every file response (what
fsspec's ``HTTPFileSystem`` needs to open, seek and read), HTML directory listings (for ``fs.ls``),
a first-byte latency, a per-response bandwidth cap, injected faults for retry tests (answer the next N
requests to a path with 503, or cut the body after K bytes) and request/byte counters.

Delays are also *accounted* (``Stats.latency_s`` / ``Stats.throttle_s`` hold the delays the server
planned), so tests assert the server's own bookkeeping instead of timing anything.

Usage::

    with serve_directory(root, latency_ms=50, bandwidth_mb_s=200) as url:
        fs.open(f"{url}/shards/shard-000000.tar")
    with LoopbackHTTPServer(root, ServeConfig(latency_ms=50)) as server:
        server.inject_fault("/shards/shard-000000.tar", fail_requests=2)
        ...
        server.stats().requests

CLI: ``python -m lerobot_wds.tools.http_server DIR --port 8000 --latency-ms 50 --bandwidth-mb-s 200``.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHUNK_BYTES = 64 * 1024  # small enough that throttling is smooth, big enough to be cheap


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


@dataclass(frozen=True)
class RequestRecord:
    """One answered request: method, path, Range header, status and body bytes actually sent."""

    method: str
    path: str
    range: str | None
    status: int
    bytes_sent: int


@dataclass(frozen=True)
class Stats:
    """A snapshot of the server's counters.

    Attributes:
        requests: answered requests (all methods, all statuses).
        get_requests / head_requests: by method.
        bytes_sent: body bytes written to clients.
        latency_s: first-byte delay the server applied in total (requests x latency).
        throttle_s: body transfer time the bandwidth cap planned in total (bytes / bandwidth).
        faults_served: responses altered by an injected fault.
        log: every request in order.
    """

    requests: int
    get_requests: int
    head_requests: int
    bytes_sent: int
    latency_s: float
    throttle_s: float
    faults_served: int
    log: tuple[RequestRecord, ...]

    def for_path(self, path: str) -> list[RequestRecord]:
        """Returns the records of requests to ``path`` (URL path such as ``/shards/shard-000000.tar``)."""
        return [r for r in self.log if r.path == path]


@dataclass
class _Fault:
    fail_requests: int = 0  # answer this many more requests with `status`
    status: int = 503
    cut_requests: int = 0  # cut this many more bodies after `cut_after_bytes`
    cut_after_bytes: int = 0


@dataclass
class _State:
    """Mutable shared state of one server, guarded by ``lock``."""

    config: ServeConfig
    root: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: dict[str, _Fault] = field(default_factory=dict)
    # mutable [method, path, range, status, bytes_sent]; appended before the response goes out and bytes are
    # counted before each write, so a client that has read a response always sees it counted
    log: list[list] = field(default_factory=list)
    latency_s: float = 0.0
    throttle_s: float = 0.0
    faults_served: int = 0


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Parses a single ``bytes=`` range into inclusive ``(first, last)``; ``None`` when unsatisfiable.

    Raises:
        ValueError: the header is not one ``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` range.
    """
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec or "-" not in spec:
        raise ValueError(f"unsupported Range header {header!r}: expected one 'bytes=a-b' range")
    first_s, _, last_s = spec.strip().partition("-")
    if not first_s:  # suffix range: the last n bytes
        n = int(last_s)
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else None
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if first > last and last_s:
        raise ValueError(f"invalid Range header {header!r}: first byte after last byte")
    if first >= size:
        return None
    return first, min(last, size - 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real bucket endpoint
    state: _State  # set on the per-server subclass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        if not self.state.config.quiet:
            super().log_message(format, *args)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._respond(body=False)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._respond(body=True)

    def _record(self, path: str, status: int) -> list:
        entry = [self.command, path, self.headers.get("Range"), status, 0]
        with self.state.lock:
            self.state.log.append(entry)
        return entry

    def _count(self, entry: list, n: int) -> None:
        with self.state.lock:
            entry[4] += n

    def _take_fault(self, path: str) -> tuple[int | None, int | None]:
        """Consumes one injected fault for ``path``: returns (error status, cut-after bytes)."""
        with self.state.lock:
            fault = self.state.faults.get(path)
            if fault is None:
                return None, None
            if fault.fail_requests > 0:
                fault.fail_requests -= 1
                self.state.faults_served += 1
                return fault.status, None
            if fault.cut_requests > 0 and self.command == "GET":
                fault.cut_requests -= 1
                self.state.faults_served += 1
                return None, fault.cut_after_bytes
            return None, None

    def _first_byte_delay(self) -> None:
        delay = self.state.config.latency_ms / 1000.0
        with self.state.lock:
            self.state.latency_s += delay
        if delay:
            time.sleep(delay)

    def _send_simple(self, path: str, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        payload = message.encode()
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self._record(path, status)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _respond(self, body: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        self._first_byte_delay()
        status, cut_after = self._take_fault(path)
        if status is not None:
            return self._send_simple(path, status, f"injected fault for {path}\n")
        root = self.state.root
        target = (root / path.lstrip("/")).resolve()
        if target != root and root not in target.parents:
            return self._send_simple(path, 404, f"{path}: outside the served directory\n")
        if target.is_dir():
            return self._send_listing(path, target, body)
        if not target.is_file():
            return self._send_simple(path, 404, f"{path}: no such file\n")
        size = target.stat().st_size
        first, last, status = 0, size - 1, 200
        if "Range" in self.headers:
            try:
                rng = parse_range(self.headers["Range"], size)
            except ValueError as e:
                return self._send_simple(path, 416, f"{path}: {e}\n", {"Content-Range": f"bytes */{size}"})
            if rng is None:
                return self._send_simple(
                    path,
                    416,
                    f"{path}: range not satisfiable for {size} bytes\n",
                    {"Content-Range": f"bytes */{size}"},
                )
            (first, last), status = rng, 206
        length = last - first + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        entry = self._record(path, status)
        self.end_headers()
        if body:
            self._send_body(entry, target, first, length, cut_after)

    def _send_body(self, entry: list, target: Path, first: int, length: int, cut_after: int | None) -> None:
        """Writes ``length`` bytes from ``first`` at the configured rate (``cut_after`` bytes on a cut)."""
        bw = self.state.config.bandwidth_mb_s
        to_send = length if cut_after is None else min(length, cut_after)
        if bw is not None:
            with self.state.lock:
                self.state.throttle_s += to_send / (bw * 1e6)
        sent = 0
        start = time.perf_counter()
        with open(target, "rb") as f:
            f.seek(first)
            while sent < to_send:
                chunk = f.read(min(CHUNK_BYTES, to_send - sent))
                if not chunk:
                    break
                self._count(entry, len(chunk))
                try:
                    self.wfile.write(chunk)
                except OSError:
                    self._count(entry, -len(chunk))  # the client went away: not sent
                    raise
                sent += len(chunk)
                if bw is not None:
                    # pace against the start so sleep overshoot does not accumulate
                    ahead = start + sent / (bw * 1e6) - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
        if cut_after is not None and sent < length:
            # the client was promised Content-Length bytes: dropping the connection is the failure
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)

    def _send_listing(self, path: str, target: Path, body: bool) -> None:
        base = path if path.endswith("/") else path + "/"
        links = "".join(
            f'<a href="{html.escape(urllib.parse.quote(base + p.name + ("/" if p.is_dir() else "")))}">'
            f"{html.escape(p.name)}</a>\n"
            for p in sorted(target.iterdir())
        )
        payload = f"<html><body>\n{links}</body></html>\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        entry = self._record(path, 200)
        if body:
            self._count(entry, len(payload))
        self.end_headers()
        if body:
            self.wfile.write(payload)


class LoopbackHTTPServer:
    """Serves ``root`` over HTTP on a background thread; a context manager that yields itself."""

    def __init__(self, root: str | os.PathLike[str], config: ServeConfig | None = None) -> None:
        root_path = Path(root).resolve()
        if not root_path.is_dir():
            raise NotADirectoryError(f"cannot serve {str(root)!r}: not a directory")
        self._state = _State(config=config or ServeConfig(), root=root_path)
        handler = type("_BoundHandler", (_Handler,), {"state": self._state})
        self._httpd = ThreadingHTTPServer((self._state.config.host, self._state.config.port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:41234``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

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
        if fail_requests < 0 or cut_requests < 0 or cut_after_bytes < 0:
            raise ValueError(
                f"fault counts must be >= 0, got fail_requests={fail_requests}, cut_requests={cut_requests}, "
                f"cut_after_bytes={cut_after_bytes}"
            )
        if fail_requests and HTTPStatus(status).value < 400:
            raise ValueError(f"a failure status must be >= 400, got {status}")
        if not path.startswith("/"):
            raise ValueError(f"fault path must be a URL path starting with '/', got {path!r}")
        with self._state.lock:
            self._state.faults[path] = _Fault(fail_requests, status, cut_requests, cut_after_bytes)

    def stats(self) -> Stats:
        """Returns a snapshot of the counters."""
        with self._state.lock:
            log = tuple(RequestRecord(*e) for e in self._state.log)
            return Stats(
                requests=len(log),
                get_requests=sum(r.method == "GET" for r in log),
                head_requests=sum(r.method == "HEAD" for r in log),
                bytes_sent=sum(r.bytes_sent for r in log),
                latency_s=self._state.latency_s,
                throttle_s=self._state.throttle_s,
                faults_served=self._state.faults_served,
                log=log,
            )

    def reset_stats(self) -> None:
        """Zeroes the counters (faults stay armed)."""
        with self._state.lock:
            self._state.log.clear()
            self._state.latency_s = self._state.throttle_s = 0.0
            self._state.faults_served = 0


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
    ap = argparse.ArgumentParser(prog="python -m lerobot_wds.tools.http_server", description=main.__doc__)
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
