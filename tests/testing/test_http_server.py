"""Tests of the loopback HTTP server with real clients: fsspec's HTTPFileSystem and requests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
import requests

from lerobot_wds.testing.http_server import LoopbackHTTPServer, ServeConfig, parse_range, serve_directory

DATA = bytes(range(256)) * 1000 + b"tail"  # 256004 bytes, every offset's value is predictable


@pytest.fixture()
def served(tmp_path: Path) -> Path:
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "shard-000000.tar").write_bytes(DATA)
    (tmp_path / "manifest.json").write_bytes(b'{"a": 1}\n')
    (tmp_path / "with space.bin").write_bytes(b"xyz")
    return tmp_path


def http_fs() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("http", skip_instance_cache=True)


def test_parse_range() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=90-200", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-1000", 100) == (0, 99)
    assert parse_range("bytes=100-", 100) is None
    for bad in ("bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=abc"):
        with pytest.raises(ValueError):
            parse_range(bad, 100)


def test_fsspec_open_seek_read(served: Path) -> None:
    with LoopbackHTTPServer(served) as server:
        fs = http_fs()
        url = f"{server.url}/shards/shard-000000.tar"
        assert fs.size(url) == len(DATA)
        with fs.open(url, "rb", block_size=4096) as f:
            f.seek(100_000)
            assert f.read(1000) == DATA[100_000:101_000]
            f.seek(len(DATA) - 4)
            assert f.read() == b"tail"
        assert fs.cat_file(url, start=5, end=17) == DATA[5:17]
        assert fs.cat_file(f"{server.url}/manifest.json") == b'{"a": 1}\n'
        assert fs.cat_file(f"{server.url}/with%20space.bin") == b"xyz"
        ranged = [r for r in server.stats().for_path("/shards/shard-000000.tar") if r.status == 206]
        assert ranged, "fsspec must have used range requests"
        assert all(r.bytes_sent <= 4096 + 12 or r.range for r in ranged)


def test_fsspec_ls(served: Path) -> None:
    with serve_directory(served) as url:
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in http_fs().ls(url + "/", detail=False))
        assert "manifest.json" in names and "shards" in names


def test_ranges_exact_with_requests(served: Path) -> None:
    with LoopbackHTTPServer(served) as server:
        url = f"{server.url}/shards/shard-000000.tar"
        r = requests.get(url, headers={"Range": "bytes=1000-1999"})
        assert r.status_code == 206
        assert r.content == DATA[1000:2000]
        assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(DATA)}"
        assert r.headers["Accept-Ranges"] == "bytes"
        r = requests.get(url, headers={"Range": "bytes=-4"})
        assert (r.status_code, r.content) == (206, b"tail")
        r = requests.get(url, headers={"Range": f"bytes={len(DATA)}-"})
        assert r.status_code == 416
        assert r.headers["Content-Range"] == f"bytes */{len(DATA)}"
        r = requests.get(url)
        assert (r.status_code, r.content) == (200, DATA)
        h = requests.head(url)
        assert (h.status_code, h.headers["Content-Length"], h.content) == (200, str(len(DATA)), b"")
        assert requests.get(f"{server.url}/nope.tar").status_code == 404
        assert requests.get(f"{server.url}/../../etc/passwd").status_code == 404
        stats = server.stats()
        assert stats.get_requests == 6 and stats.head_requests == 1 and stats.requests == 7
        assert stats.bytes_sent == 1000 + 4 + len(DATA)
        # requests opens a connection per call, so log order may interleave across server threads
        assert sorted(r.status for r in stats.log) == [200, 200, 206, 206, 404, 404, 416]


def test_latency_and_bandwidth_accounting(served: Path) -> None:
    cfg = ServeConfig(latency_ms=20, bandwidth_mb_s=50)
    with LoopbackHTTPServer(served, cfg) as server:
        url = f"{server.url}/shards/shard-000000.tar"
        assert requests.get(url).content == DATA
        assert requests.get(url, headers={"Range": "bytes=0-99999"}).content == DATA[:100_000]
        requests.head(url)
        stats = server.stats()
        assert stats.latency_s == pytest.approx(3 * 0.020)
        assert stats.throttle_s == pytest.approx((len(DATA) + 100_000) / 50e6)
        server.reset_stats()
        assert server.stats().requests == 0 and server.stats().throttle_s == 0


def test_unthrottled_accounts_nothing(served: Path) -> None:
    with LoopbackHTTPServer(served) as server:
        requests.get(f"{server.url}/shards/shard-000000.tar")
        assert server.stats().latency_s == 0 and server.stats().throttle_s == 0


def test_injected_503_then_success(served: Path) -> None:
    with LoopbackHTTPServer(served) as server:
        path = "/shards/shard-000000.tar"
        server.inject_fault(path, fail_requests=2)
        assert requests.get(server.url + path).status_code == 503
        assert requests.get(server.url + "/manifest.json").status_code == 200  # other paths unaffected
        assert requests.get(server.url + path).status_code == 503
        assert requests.get(server.url + path).content == DATA
        assert server.stats().faults_served == 2


def test_injected_cut_body(served: Path) -> None:
    with LoopbackHTTPServer(served) as server:
        path = "/shards/shard-000000.tar"
        server.inject_fault(path, cut_requests=1, cut_after_bytes=5000)
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(server.url + path).content  # noqa: B018 - reading the body triggers the error
        assert server.stats().for_path(path)[0].bytes_sent == 5000
        assert requests.get(server.url + path).content == DATA


def test_fsspec_sees_cut_as_error(served: Path) -> None:
    with LoopbackHTTPServer(served) as server:
        path = "/shards/shard-000000.tar"
        server.inject_fault(path, cut_requests=1, cut_after_bytes=100)
        with pytest.raises(Exception):  # noqa: B017 - aiohttp's exception type varies by version
            http_fs().cat_file(server.url + path)


def test_bad_config_and_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        ServeConfig(latency_ms=-1)
    with pytest.raises(ValueError, match="bandwidth_mb_s"):
        ServeConfig(bandwidth_mb_s=0)
    with pytest.raises(NotADirectoryError, match="missing"):
        LoopbackHTTPServer(tmp_path / "missing")
    with LoopbackHTTPServer(tmp_path) as server, pytest.raises(ValueError, match="status"):
        server.inject_fault("/x", fail_requests=1, status=200)


def test_cli_serves(served: Path) -> None:
    with LoopbackHTTPServer(served) as probe:
        port = int(probe.url.rsplit(":", 1)[1])  # a port that was free a moment ago
    proc = subprocess.Popen(
        [sys.executable, "-m", "lerobot_wds.testing.http_server", str(served), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()  # printed once the socket is bound
        assert f"http://127.0.0.1:{port}" in line
        r = requests.get(f"http://127.0.0.1:{port}/shards/shard-000000.tar", headers={"Range": "bytes=2-3"})
        assert r.content == DATA[2:4]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
