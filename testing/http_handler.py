"""The request handler of the loopback HTTP server: how one GET or HEAD of the served directory is answered.

Owns ``Range`` parsing (:func:`parse_range`), file responses (200, or 206 with ``Content-Range``; 416 when
unsatisfiable; ``Accept-Ranges``/``Content-Length`` always), HTML directory listings, the first-byte delay,
the paced body writes of the bandwidth cap, and applying an injected fault (an error status, or a body cut
after K bytes by dropping the connection). Faults and counters live in ``tools/http_state``; the server,
its config and CLI in ``tools/http_server``, which binds a handler class per server with :func:`bind_handler`.
"""

from __future__ import annotations

import contextlib
import html
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING

from lerobot_wds.testing.http_state import ServerState

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

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self._respond(body=False)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._respond(body=True)

    def _record(self, path: str, status: int) -> list:
        return self.state.record(self.command, path, self.headers.get("Range"), status)

    def _first_byte_delay(self) -> None:
        delay = self.config.latency_ms / 1000.0
        self.state.add_latency(delay)
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
        status, cut_after = self.state.take_fault(path, self.command)
        if status is not None:
            return self._send_simple(path, status, f"injected fault for {path}\n")
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
        entry = self._record(path, status)
        self.end_headers()
        if body:
            self._send_body(entry, target, first, length, cut_after)

    def _send_body(self, entry: list, target: Path, first: int, length: int, cut_after: int | None) -> None:
        """Writes ``length`` bytes from ``first`` at the configured rate (``cut_after`` bytes on a cut)."""
        bw = self.config.bandwidth_mb_s
        to_send = length if cut_after is None else min(length, cut_after)
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
            self.state.count(entry, len(payload))
        self.end_headers()
        if body:
            self.wfile.write(payload)
