"""Loopback S3 for tests: storage options for an s3fs client of a local endpoint, and a fault-injecting proxy.

:class:`S3FaultProxy` sits between s3fs and an S3 endpoint (moto's server in the tests) and forwards every
request unchanged, except those a test armed a fault for:

- PUT: answer the next N matching PUTs with 503 ServiceUnavailable (:meth:`~S3FaultProxy.fail_next_puts`),
  or hold one PUT after half its body arrived (:meth:`~S3FaultProxy.hold_put`, so a test can kill the
  uploader mid-upload: a held PUT whose client died is dropped, never stored);
- GET: a 503 burst (or 403 / 500: :meth:`~S3FaultProxy.fail_next_gets`), a connection reset after K body
  bytes (:meth:`~S3FaultProxy.reset_next_gets`), or a stall after K body bytes until the client gives up
  (:meth:`~S3FaultProxy.stall_next_gets`). Content-Length announces the whole object, so the client sees a
  body that ends early;
- a restart: :meth:`~S3FaultProxy.stop` drops every open connection and refuses new ones, ``start()``
  serves the same port again.

Every request is logged (:attr:`S3FaultProxy.log`: method, path, status, fault) for exact assertions. Note
that s3fs retries transport errors (timeouts, cut bodies) itself, ``s3fs.S3FileSystem.retries`` times per
call, before its caller sees one; 503s are not retried by s3fs (botocore's own retries are off in
:func:`s3_options`).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from lerobot_wds.testing.http_handler import reset_connection, stall_until_closed

GetFaultKind = Literal["status", "reset", "stall"]
_CODES = {403: "AccessDenied", 500: "InternalError", 503: "ServiceUnavailable"}  # S3's error codes


def s3_options(endpoint: str) -> dict[str, Any]:
    """Storage options for s3fs against a loopback endpoint, botocore retries off (ours are under test)."""
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "config_kwargs": {"retries": {"total_max_attempts": 1, "mode": "standard"}},
        "skip_instance_cache": True,
    }


@dataclass
class S3Bucket:
    """A bucket on a loopback S3 server."""

    name: str
    endpoint: str
    options: dict[str, Any]
    fs: Any

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.name}/{prefix}".rstrip("/")

    def via(self, proxy: S3FaultProxy) -> dict[str, Any]:
        """Storage options that reach this bucket through ``proxy``."""
        return s3_options(proxy.endpoint)


@dataclass
class _GetFault:
    kind: GetFaultKind
    left: int
    match: str
    after: int = 0
    stall_s: float = 60.0
    status: int = 503


@dataclass
class _ProxyState:
    upstream: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_puts: int = 0
    fail_match: str = ""
    failed: int = 0
    hold_match: str | None = None
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    puts: list[str] = field(default_factory=list)
    get_faults: list[_GetFault] = field(default_factory=list)
    log: list[tuple[str, str, int, str | None]] = field(default_factory=list)  # method, path, status, fault
    connections: set[socket.socket] = field(default_factory=set)

    def take_get_fault(self, path: str, length: int | None) -> _GetFault | None:
        """Consumes the first armed GET fault for ``path``: before the upstream request (``length`` None) an
        error status, after it a body fault that ends a ``length``-byte body early (else it stays armed)."""
        with self.lock:
            for fault in self.get_faults:
                body = fault.kind != "status"
                if fault.left > 0 and fault.match in path and body == (length is not None):
                    if length is None or fault.after < length:
                        fault.left -= 1
                        return fault
        return None


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _ProxyState

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        with self.state.lock:
            self.state.connections.add(self.connection)

    def finish(self) -> None:
        with self.state.lock:
            self.state.connections.discard(self.connection)
        super().finish()

    def _log(self, status: int, fault: str | None = None) -> None:
        with self.state.lock:
            self.state.log.append((self.command, self.path, status, fault))

    def _body(self, hold: bool) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if not hold:
            return self.rfile.read(n)
        first = self.rfile.read(n // 2)
        self.state.holding.set()
        # the test kills the client now; the release event ends the wait
        self.state.release.wait(timeout=60)
        if self.state.stopping.is_set():
            return first  # released by stop(): a dying server stores nothing of a PUT it had half received
        rest = self.rfile.read(n - n // 2)
        if self._client_gone():
            # Small bodies sit whole in the kernel's socket buffers before the kill lands; a client that
            # vanished while held is treated as having died before its last bytes, so nothing is stored.
            return first
        return first + rest

    def _client_gone(self) -> bool:
        """A live HTTP/1.1 client never half-closes, so EOF (or a reset) here means it died."""
        sock = self.connection
        sock.setblocking(False)
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            sock.setblocking(True)

    def _error(self, status: int) -> None:
        body = f"<Error><Code>{_CODES[status]}</Code><Message>injected by S3FaultProxy</Message></Error>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._log(status, "status")

    def _forward(self) -> None:
        st = self.state
        if st.stopping.is_set():  # a request on a kept-alive connection while stop() runs: no answer
            self.close_connection = True
            return
        is_put = self.command == "PUT"
        with st.lock:
            fail = is_put and st.fail_match in self.path and st.failed < st.fail_puts
            if fail:
                st.failed += 1
            hold = is_put and st.hold_match is not None and st.hold_match in self.path
            if hold:
                st.hold_match = None  # hold only the first matching PUT
            if is_put:
                st.puts.append(self.path)
        get_fault = st.take_get_fault(self.path, None) if self.command == "GET" else None
        body = self._body(hold)
        if len(body) < int(self.headers.get("Content-Length") or 0):
            # the client died mid-body: like S3, store nothing and drop the connection
            self.close_connection = True
            return
        if fail:
            return self._error(503)
        if get_fault is not None and get_fault.kind == "status":
            return self._error(get_fault.status)
        status, headers, data = self._upstream(body)
        if self.command == "GET" and 200 <= status < 300:
            get_fault = st.take_get_fault(self.path, len(data))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return self._log(status)
        if get_fault is None:
            self.wfile.write(data)
            return self._log(status)
        self.wfile.write(data[: get_fault.after])
        self.wfile.flush()
        self._log(status, get_fault.kind)
        self.close_connection = True
        if get_fault.kind == "stall":
            stall_until_closed(self.connection, get_fault.stall_s, st.stopping)
        reset_connection(self)

    def _upstream(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.state.upstream.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        hop = ("connection", "transfer-encoding", "expect")  # the body is already read: no 100-continue upstream
        headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
        headers["Content-Length"] = str(len(body))
        conn.request(
            self.command,
            self.path,
            body=body if body or self.command in ("PUT", "POST") else None,
            headers=headers,
        )
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        drop = ("connection", "transfer-encoding", "content-length", "server", "date")
        kept = [(k, v) for k, v in resp.getheaders() if k.lower() not in drop]
        # a HEAD response carries the object's length, not the (empty) body's
        length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        return resp.status, [*kept, ("Content-Length", length)], data

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 - stdlib naming


class S3FaultProxy:
    """A loopback HTTP proxy in front of an S3 endpoint that injects PUT and GET faults (module docstring)."""

    def __init__(self, upstream: str) -> None:
        self.state = _ProxyState(upstream=upstream)
        self._handler = type("Handler", (_ProxyHandler,), {"state": self.state})
        self._server: ThreadingHTTPServer | None = None
        self._port = 0
        self.start()
        self.endpoint = f"http://127.0.0.1:{self._port}"

    def start(self) -> None:
        """Serves (again, after :meth:`stop`: on the same port, as a restarted endpoint)."""
        if self._server is not None:
            return
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler)  # SO_REUSEADDR
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self.state.stopping.clear()
        # poll every 50 ms: stop() (and so a restart) returns at once
        thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="s3-proxy", daemon=True)
        thread.start()

    def fail_next_puts(self, n: int, match: str = "") -> None:
        """Answers the next ``n`` PUTs whose path contains ``match`` with 503 ServiceUnavailable."""
        with self.state.lock:
            self.state.fail_puts, self.state.fail_match, self.state.failed = n, match, 0

    def hold_put(self, match: str) -> threading.Event:
        """Holds the next PUT whose path contains ``match`` after half its body; returns the 'holding' event."""
        with self.state.lock:
            self.state.hold_match = match
            self.state.holding.clear()
            self.state.release.clear()
        return self.state.holding

    def _arm_get(self, fault: _GetFault) -> None:
        if fault.left < 0 or fault.after < 0:
            raise ValueError(f"GET fault counts must be >= 0, got {fault}")
        with self.state.lock:
            self.state.get_faults.append(fault)

    def fail_next_gets(self, n: int, match: str = "", status: int = 503) -> None:
        """Answers the next ``n`` GETs whose path contains ``match`` with ``status`` (503: a burst of
        ServiceUnavailable; 403 AccessDenied, 500 InternalError)."""
        if status not in _CODES:
            raise ValueError(f"status must be one of {sorted(_CODES)}, got {status}")
        self._arm_get(_GetFault("status", n, match, status=status))

    def reset_next_gets(self, n: int, match: str = "", after_bytes: int = 0) -> None:
        """Resets (RST) the next ``n`` matching GETs after ``after_bytes`` bytes of their body."""
        self._arm_get(_GetFault("reset", n, match, after_bytes))

    def stall_next_gets(self, n: int, match: str = "", after_bytes: int = 0, stall_s: float = 60.0) -> None:
        """Sends the next ``n`` matching GET bodies only up to ``after_bytes``, then nothing until the client
        closes (its read timed out), the proxy stops or ``stall_s`` pass; then drops the connection."""
        self._arm_get(_GetFault("stall", n, match, after_bytes, stall_s))

    @property
    def failed(self) -> int:
        """PUTs answered with an injected 503."""
        return self.state.failed

    @property
    def log(self) -> list[tuple[str, str, int, str | None]]:
        """Every answered request so far: (method, path, status, injected fault or None)."""
        with self.state.lock:
            return list(self.state.log)

    def faults(self, kind: GetFaultKind, method: str = "GET") -> int:
        """Responses to ``method`` requests that the fault ``kind`` altered."""
        return sum(m == method and f == kind for m, _, _, f in self.log)

    def stop(self) -> None:
        """Stops serving, releases held PUTs, ends stalls and drops open connections (clients see resets)."""
        if self._server is None:
            return
        self.state.stopping.set()  # first: a held PUT released next must see it
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self.state.lock:
            conns = list(self.state.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
