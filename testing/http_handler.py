"""The request handler of the loopback HTTP server: how one GET or HEAD of the served directory is answered.

Owns ``Range`` parsing (:func:`parse_range`), file responses (200, or 206 with ``Content-Range``; 416 when
unsatisfiable; ``Accept-Ranges``/``Content-Length`` always), HTML directory listings, the first-byte delay,
the paced body writes of the bandwidth cap, and applying an injected fault: an error status, or a body
that ends after K bytes by a cut (FIN: the connection is shut down), a reset (RST: closed with a zero linger
time) or a stall (nothing more is sent until the client gives up and closes, or the stall's time passes).
Faults and counters live in ``tools/http_state``; the server, its config and CLI in ``tools/http_server``,
which binds a handler class per server with :func:`bind_handler`.
"""

from __future__ import annotations

import contextlib
import html
import io
import select
import socket
import struct
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from socketserver import StreamRequestHandler
from typing import TYPE_CHECKING

from lerobot_wds.testing.http_state import FaultAction, ServerState

if TYPE_CHECKING:
    from lerobot_wds.testing.http_server import ServeConfig

CHUNK_BYTES = 64 * 1024  # small enough that throttling is smooth, big enough to be cheap


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


def stall_until_closed(conn: socket.socket, seconds: float, stopping: threading.Event) -> None:
    """Sends nothing until the client closes ``conn`` (its read timed out), ``stopping`` or ``seconds`` pass."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stopping.is_set():
        readable, _, _ = select.select([conn], [], [], 0.05)
        if readable:
            try:
                if conn.recv(1, socket.MSG_PEEK) == b"":
                    return  # the client gave up and closed
            except OSError:
                return
            time.sleep(0.05)  # a pipelined request, not an EOF: keep stalling


def reset_connection(handler: StreamRequestHandler) -> None:
    """Closes a handler's connection with a zero linger time, so the kernel sends RST instead of FIN."""
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.rfile.close()
    handler.wfile.close()
    handler.connection.close()  # the file objects held the descriptor open: now it really closes
    handler.rfile, handler.wfile = io.BytesIO(), io.BytesIO()  # what the request loop still flushes and closes


def bind_handler(root: Path, config: ServeConfig, state: ServerState) -> type[BaseHTTPRequestHandler]:
    """Returns a handler class serving the resolved directory ``root`` with ``config``, counting into ``state``."""
    return type("_BoundHandler", (_Handler,), {"root": root, "config": config, "state": state})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real bucket endpoint
    # set on the per-server subclass by bind_handler
    root: Path
    config: ServeConfig
    state: ServerState

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        if not self.config.quiet:
            super().log_message(format, *args)

    def setup(self) -> None:
        super().setup()
        self.state.opened(self.connection)

    def finish(self) -> None:
        self.state.closed(self.connection)
        super().finish()

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._respond(body=False)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._respond(body=True)

    def _record(self, path: str, status: int, fault: FaultAction | None = None) -> list:
        kind = fault.kind if fault is not None else None
        return self.state.record(self.command, path, self.headers.get("Range"), status, kind)

    def _first_byte_delay(self) -> None:
        delay = self.config.latency_ms / 1000.0
        self.state.add_latency(delay)
        if delay:
            time.sleep(delay)

    def _send_simple(
        self,
        path: str,
        status: int,
        message: str,
        extra: dict[str, str] | None = None,
        fault: FaultAction | None = None,
    ) -> None:
        payload = message.encode()
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self._record(path, status, fault)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _respond(self, body: bool) -> None:
        parts = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(parts.path)
        self._first_byte_delay()
        wanted = self.config.require_query or {}
        if wanted and any(urllib.parse.parse_qs(parts.query).get(k) != [v] for k, v in wanted.items()):
            return self._send_simple(path, 403, f"{path}: signature missing or wrong\n")
        fault = self.state.take_fault(path)
        if fault is not None and fault.status is not None:
            return self._send_simple(path, fault.status, f"injected fault for {path}\n", fault=fault)
        root = self.root
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
        fault = self.state.take_body_fault(path, length) if body else None
        entry = self._record(path, status, fault)
        self.end_headers()
        if body:
            self._send_body(entry, target, first, length, fault)

    def _send_body(self, entry: list, target: Path, first: int, length: int, fault: FaultAction | None) -> None:
        """Writes ``length`` bytes from ``first`` at the configured rate (``fault.after`` bytes on a fault)."""
        bw = self.config.bandwidth_mb_s
        to_send = length if fault is None else min(length, fault.after)
        if bw is not None:
            self.state.add_throttle(to_send / (bw * 1e6))
        sent = 0
        start = time.perf_counter()
        with open(target, "rb") as f:
            f.seek(first)
            while sent < to_send:
                chunk = f.read(min(CHUNK_BYTES, to_send - sent))
                if not chunk:
                    break
                self.state.count(entry, len(chunk))
                try:
                    self.wfile.write(chunk)
                except OSError:
                    self.state.count(entry, -len(chunk))  # the client went away: not sent
                    raise
                sent += len(chunk)
                if bw is not None:
                    # pace against the start so sleep overshoot does not accumulate
                    ahead = start + sent / (bw * 1e6) - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
        if fault is not None and sent < length:
            # the client was promised Content-Length bytes: ending the connection early is the failure
            self.wfile.flush()
            self.close_connection = True
            if fault.kind == "stall":
                self._stall(fault.stall_s)
            if fault.kind == "reset":
                self._reset()
            else:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

    def _stall(self, seconds: float) -> None:
        stall_until_closed(self.connection, seconds, self.state.stopping)

    def _reset(self) -> None:
        reset_connection(self)

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
            self.state.count(entry, len(payload))
        self.end_headers()
        if body:
            self.wfile.write(payload)
