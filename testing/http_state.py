"""The mutable state one loopback HTTP server shares between its request threads: faults and counters.

Owns fault injection (arming a fault on a URL path and consuming it one request at a time: an error status,
a body cut, reset or stalled after K bytes), the open connections (dropped when the server stops, as a
restarted server would), and the request bookkeeping (per-request records, byte counts, the first-byte and
throttle delays the server planned), plus the immutable :class:`Stats` snapshot the server hands out. Every
mutation takes the state's lock, so the handler threads of ``tools/http_server`` never touch the shared
fields directly.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal

FaultKind = Literal["status", "cut", "reset", "stall"]


@dataclass(frozen=True)
class RequestRecord:
    """One answered request: method, path, Range header, status, body bytes actually sent, injected fault."""

    method: str
    path: str
    range: str | None
    status: int
    bytes_sent: int
    fault: FaultKind | None = None


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

    def faults(self, kind: FaultKind) -> int:
        """How many responses the fault ``kind`` altered."""
        return sum(r.fault == kind for r in self.log)


@dataclass
class _Fault:
    fail_requests: int = 0  # answer this many more requests with `status`
    status: int = 503
    cut_requests: int = 0  # cut this many more bodies after `cut_after_bytes`
    cut_after_bytes: int = 0
    reset_requests: int = 0  # reset (RST) this many more connections after `reset_after_bytes` of the body
    reset_after_bytes: int = 0
    stall_requests: int = 0  # stop sending this many more bodies after `stall_after_bytes` for `stall_s`
    stall_after_bytes: int = 0
    stall_s: float = 60.0


@dataclass(frozen=True)
class FaultAction:
    """What to do to one response: an error ``status``, or a body ended by ``kind`` after ``after`` bytes."""

    kind: FaultKind
    status: int | None = None
    after: int = 0
    stall_s: float = 0.0


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
    connections: set[socket.socket] = field(default_factory=set)
    stopping: threading.Event = field(default_factory=threading.Event)  # ends stalls when the server stops

    def arm_fault(self, path: str, **counts: int | float) -> None:
        """Replaces the fault on URL ``path``; see ``LoopbackHTTPServer.inject_fault`` for the arguments.

        Raises:
            ValueError: a negative count, a failure status below 400, or a path not starting with ``/``.
        """
        fault = _Fault(**counts)  # type: ignore[arg-type]
        negative = {k: v for k, v in counts.items() if k != "status" and v < 0}
        if negative:
            raise ValueError(f"fault counts must be >= 0, got {negative}")
        if fault.fail_requests and HTTPStatus(fault.status).value < 400:
            raise ValueError(f"a failure status must be >= 400, got {fault.status}")
        if not path.startswith("/"):
            raise ValueError(f"fault path must be a URL path starting with '/', got {path!r}")
        with self.lock:
            self.faults[path] = fault

    def take_fault(self, path: str) -> FaultAction | None:
        """Consumes one injected error status for a request to ``path`` (any method), if one is armed."""
        with self.lock:
            fault = self.faults.get(path)
            if fault is None or fault.fail_requests == 0:
                return None
            fault.fail_requests -= 1
            self.faults_served += 1
            return FaultAction("status", status=fault.status)

    def take_body_fault(self, path: str, length: int) -> FaultAction | None:
        """Consumes one body fault (cuts, then resets, then stalls) for a GET body of ``length`` bytes to
        ``path``; one that would send the whole body anyway stays armed for a longer one."""
        with self.lock:
            fault = self.faults.get(path)
            if fault is None or fault.fail_requests:
                return None
            action = None
            if fault.cut_requests > 0 and fault.cut_after_bytes < length:
                fault.cut_requests -= 1
                action = FaultAction("cut", after=fault.cut_after_bytes)
            elif fault.reset_requests > 0 and fault.reset_after_bytes < length:
                fault.reset_requests -= 1
                action = FaultAction("reset", after=fault.reset_after_bytes)
            elif fault.stall_requests > 0 and fault.stall_after_bytes < length:
                fault.stall_requests -= 1
                action = FaultAction("stall", after=fault.stall_after_bytes, stall_s=fault.stall_s)
            if action is not None:
                self.faults_served += 1
            return action

    def record(
        self, method: str, path: str, range_header: str | None, status: int, fault: FaultKind | None = None
    ) -> list:
        """Appends a request to the log and returns its entry, whose byte count ``count`` advances."""
        entry = [method, path, range_header, status, 0, fault]
        with self.lock:
            self.log.append(entry)
        return entry

    def opened(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections.add(conn)

    def closed(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections.discard(conn)

    def drop_connections(self) -> None:
        """Ends every open connection (and stall), as a server process that stops would."""
        self.stopping.set()
        with self.lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

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
