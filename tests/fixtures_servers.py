"""Real loopback servers for remote-I/O tests: moto's S3 server, an S3 fault proxy, and an HTTP file server.

- ``s3_server`` (session): ``moto.server.ThreadedMotoServer`` on 127.0.0.1 with a free port.
- ``s3_bucket`` (function): a fresh bucket; yields ``S3Bucket`` with its URL, storage options and an s3fs
  filesystem (``endpoint_url`` points at the server; botocore's own retries are off so ours are exercised).
- ``s3_proxy`` (function): an ``S3FaultProxy`` in front of the moto server that can answer the next N PUTs
  with 503, or hold a PUT after half its body arrived (so a test can kill the uploader mid-upload: a held
  PUT whose client died is dropped, never stored), then forwards everything else unchanged.
  ``S3Bucket.via(proxy)`` gives storage options that go through it.
- ``http_dir_server``: returns ``serve(directory) -> LoopbackHTTPServer`` (tools/http_server: ranges, directory
  listings) stopped at teardown.
"""

from __future__ import annotations

import http.client
import itertools
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

_bucket_ids = itertools.count()


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
    """A bucket on the loopback moto server."""

    name: str
    endpoint: str
    options: dict[str, Any]
    fs: Any

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.name}/{prefix}".rstrip("/")

    def via(self, proxy: S3FaultProxy) -> dict[str, Any]:
        """Storage options that reach this bucket through ``proxy``."""
        return s3_options(proxy.endpoint)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Starts moto's S3 server on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: str) -> S3Bucket:
    """A fresh, empty bucket on the session's moto server."""
    import s3fs

    opts = s3_options(s3_server)
    fs = s3fs.S3FileSystem(**opts)
    name = f"bucket-{next(_bucket_ids)}"
    fs.call_s3("create_bucket", Bucket=name)  # mkdir would send an invalid us-east-1 LocationConstraint
    return S3Bucket(name=name, endpoint=s3_server, options=opts, fs=fs)


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
    puts: list[str] = field(default_factory=list)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _ProxyState

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def _body(self, hold: bool) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if not hold:
            return self.rfile.read(n)
        first = self.rfile.read(n // 2)
        self.state.holding.set()
        # the test kills the client now; the release event ends the wait
        self.state.release.wait(timeout=60)
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

    def _forward(self) -> None:
        st = self.state
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
        body = self._body(hold)
        if len(body) < int(self.headers.get("Content-Length") or 0):
            # the client died mid-body: like S3, store nothing and drop the connection
            self.close_connection = True
            return
        if fail:
            msg = b"<Error><Code>ServiceUnavailable</Code><Message>injected by S3FaultProxy</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        host, port = st.upstream.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        hop = ("connection", "transfer-encoding", "expect")  # the body is already read: no 100-continue upstream
        headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None,
                     headers=headers)  # fmt: skip
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                self.send_header(k, v)
        # a HEAD response carries the object's length, not the (empty) body's
        length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815 - stdlib naming


class S3FaultProxy:
    """A loopback HTTP proxy in front of an S3 endpoint that injects 503s or holds a PUT mid-body."""

    def __init__(self, upstream: str) -> None:
        self.state = _ProxyState(upstream=upstream)
        handler = type("Handler", (_ProxyHandler,), {"state": self.state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

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

    @property
    def failed(self) -> int:
        return self.state.failed

    def stop(self) -> None:
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def s3_proxy(s3_server: str) -> Iterator[S3FaultProxy]:
    proxy = S3FaultProxy(s3_server)
    yield proxy
    proxy.stop()


@pytest.fixture
def http_dir_server() -> Iterator[Callable[..., Any]]:
    """Returns ``serve(directory, **ServeConfig fields) -> LoopbackHTTPServer``; servers stop at teardown."""
    from lerobot_wds.testing.http_server import LoopbackHTTPServer, ServeConfig

    servers: list[Any] = []

    def serve(directory: str | Path, **config: Any) -> Any:
        server = LoopbackHTTPServer(directory, ServeConfig(**config)).start()
        servers.append(server)
        return server

    yield serve
    for s in servers:
        s.stop()
