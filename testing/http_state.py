"""The mutable state one loopback HTTP server shares between its request threads: faults and counters.

Owns fault injection (arming a fault on a URL path and consuming it one request at a time) and the request
bookkeeping (per-request records, byte counts, the first-byte and throttle delays the server planned), plus
the immutable :class:`Stats` snapshot the server hands out. Every mutation takes the state's lock, so the
handler threads of ``tools/http_server`` never touch the shared fields directly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http import HTTPStatus


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
class ServerState:
    """Mutable shared state of one server, guarded by ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: dict[str, _Fault] = field(default_factory=dict)
    # mutable [method, path, range, status, bytes_sent]; appended before the response goes out and bytes are
    # counted before each write, so a client that has read a response always sees it counted
    log: list[list] = field(default_factory=list)
    latency_s: float = 0.0
    throttle_s: float = 0.0
    faults_served: int = 0

    def arm_fault(
        self, path: str, *, fail_requests: int, status: int, cut_requests: int, cut_after_bytes: int
    ) -> None:
        """Replaces the fault on URL ``path``; see ``LoopbackHTTPServer.inject_fault`` for the arguments.

        Raises:
            ValueError: a negative count, a failure status below 400, or a path not starting with ``/``.
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
        with self.lock:
            self.faults[path] = _Fault(fail_requests, status, cut_requests, cut_after_bytes)

    def take_fault(self, path: str, method: str) -> tuple[int | None, int | None]:
        """Consumes one injected fault for ``path``: returns (error status, cut-after bytes)."""
        with self.lock:
            fault = self.faults.get(path)
            if fault is None:
                return None, None
            if fault.fail_requests > 0:
                fault.fail_requests -= 1
                self.faults_served += 1
                return fault.status, None
            if fault.cut_requests > 0 and method == "GET":
                fault.cut_requests -= 1
                self.faults_served += 1
                return None, fault.cut_after_bytes
            return None, None

    def record(self, method: str, path: str, range_header: str | None, status: int) -> list:
        """Appends a request to the log and returns its entry, whose byte count ``count`` advances."""
        entry = [method, path, range_header, status, 0]
        with self.lock:
            self.log.append(entry)
        return entry

    def count(self, entry: list, n: int) -> None:
        """Adds ``n`` (negative: bytes that did not go out after all) to an entry's bytes sent."""
        with self.lock:
            entry[4] += n

    def add_latency(self, seconds: float) -> None:
        """Accounts a first-byte delay."""
        with self.lock:
            self.latency_s += seconds

    def add_throttle(self, seconds: float) -> None:
        """Accounts the transfer time the bandwidth cap plans for one body."""
        with self.lock:
            self.throttle_s += seconds

    def snapshot(self) -> Stats:
        """Returns the counters as an immutable :class:`Stats`."""
        with self.lock:
            log = tuple(RequestRecord(*e) for e in self.log)
            return Stats(
                requests=len(log),
                get_requests=sum(r.method == "GET" for r in log),
                head_requests=sum(r.method == "HEAD" for r in log),
                bytes_sent=sum(r.bytes_sent for r in log),
                latency_s=self.latency_s,
                throttle_s=self.throttle_s,
                faults_served=self.faults_served,
                log=log,
            )

    def reset_counters(self) -> None:
        """Zeroes the counters; armed faults stay."""
        with self.lock:
            self.log.clear()
            self.latency_s = self.throttle_s = 0.0
            self.faults_served = 0
