"""Fixtures of real loopback servers for remote-I/O tests: moto's S3 server, an S3 fault proxy, an HTTP server.

The servers themselves live in ``lerobot_wds.testing`` (``testing/s3.py``: storage options, ``S3Bucket`` and
``S3FaultProxy`` with PUT and GET faults; ``testing/http_server.py``); these are only their pytest fixtures.

- ``s3_server`` (session): ``moto.server.ThreadedMotoServer`` on 127.0.0.1 with a free port.
- ``s3_bucket`` (function): a fresh bucket; yields ``S3Bucket`` with its URL, storage options and an s3fs
  filesystem (``endpoint_url`` points at the server; botocore's own retries are off so ours are exercised).
- ``s3_proxy`` (function): an ``S3FaultProxy`` in front of the moto server: 503 bursts on PUTs or GETs, a
  PUT held after half its body (so a test can kill the uploader mid-upload), GETs reset or stalled mid-body;
  everything else is forwarded unchanged.
  ``S3Bucket.via(proxy)`` gives storage options that go through it.
- ``http_dir_server``: returns ``serve(directory) -> LoopbackHTTPServer`` (tools/http_server: ranges, directory
  listings) stopped at teardown.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lerobot_wds.testing.s3 import S3Bucket, S3FaultProxy, s3_options

__all__ = ["S3Bucket", "S3FaultProxy", "s3_options"]  # importable from here as before

_bucket_ids = itertools.count()


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
