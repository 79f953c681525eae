"""Faults on the wire for the converter: output is byte-identical to a clean conversion, every file and manifest.

Source over the loopback HTTP server (503 bursts, connection resets and stalls mid-body on the source's video
and parquet files; the stall raises the read timeout set in ``source_options``, 1 s, and is retried) and
destination on moto's S3 behind the fault proxy (503 bursts on PUTs and GETs, GETs reset or stalled
mid-body). Every conversion runs under a deadline, so a stall that never times out fails instead of hanging.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from convert_helpers import output_bytes, s3_output_bytes
from wire_helpers import within_deadline

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import ConvertSummary, convert
from lerobot_wds.testing.http_server import LoopbackHTTPServer

TIMEOUT_S = 1.0
SOURCE_OPTIONS = {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=None, sock_read=TIMEOUT_S)}}


def run(source: str, dest: str, **kw: Any) -> ConvertSummary:
    cfg = ConvertConfig(
        source=source, dest=dest, progress=False, target_shard_bytes=1, workers=1, retry_backoff_s=0.01, **kw
    )
    return within_deadline(lambda: convert(cfg))


# --- source over HTTP ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_server(small_lerobot_dataset):
    with LoopbackHTTPServer(small_lerobot_dataset.root) as server:
        yield server


@pytest.fixture(scope="module")
def clean_from_http(source_server, tmp_path_factory) -> dict[str, bytes]:
    """A clean conversion from the same URL (the manifest records the source)."""
    out = tmp_path_factory.mktemp("clean_http") / "out"
    run(source_server.url, str(out), source_options=SOURCE_OPTIONS)
    return output_bytes(out)


def _source_files(ds) -> tuple[str, str]:
    ep = ds.episodes[1]
    video = "/" + ep.videos[ds.camera_keys[0]].path.relative_to(ds.root).as_posix()
    data = "/" + ep.data_path.relative_to(ds.root).as_posix()
    return video, data


HTTP_FAULTS = {
    # fault: (file, inject_fault arguments, the server's fault kind, times)
    "503 burst on the data parquet": ("data", dict(fail_requests=3), "status", 3),
    "reset mid-body on the video": ("video", dict(reset_requests=2, reset_after_bytes=8), "reset", 2),
    "stall mid-body on the video": ("video", dict(stall_requests=1, stall_after_bytes=8), "stall", 1),
}


@pytest.mark.parametrize("fault", list(HTTP_FAULTS))
def test_http_source_fault_gives_identical_output(
    small_lerobot_dataset, source_server, clean_from_http, tmp_path: Path, fault: str
) -> None:
    which, arm, kind, times = HTTP_FAULTS[fault]
    video, data = _source_files(small_lerobot_dataset)
    path = video if which == "video" else data
    source_server.reset_stats()
    source_server.inject_fault(path, **arm)
    run(source_server.url, str(tmp_path / "out"), source_options=SOURCE_OPTIONS)
    assert output_bytes(tmp_path / "out") == clean_from_http  # every file, manifest included
    stats = source_server.stats()
    assert stats.faults(kind) == stats.faults_served == times
    assert [r.fault for r in stats.for_path(path) if r.fault] == [kind] * times


# --- destination on S3 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_local(small_lerobot_dataset, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("clean_local") / "out"
    run(str(small_lerobot_dataset.root), str(out))
    return output_bytes(out)


def _s3fs_retries() -> int:
    import s3fs

    return s3fs.S3FileSystem.retries


PART = "/out/_convert/part-"  # the run's part record, read back (GET) before the manifest is written
S3_FAULTS = {
    # fault: (arm(proxy, n), method, the proxy's fault kind, times(n), the sink's retries); n: s3fs's retries
    "PUT 503 burst": (lambda p, n: p.fail_next_puts(3, "/out/shards/shard-"), "PUT", "status", lambda n: 3, 3),
    "GET 503 burst": (lambda p, n: p.fail_next_gets(2, PART), "GET", "status", lambda n: 2, 2),
    "GET reset mid-body, beyond s3fs's retries": (
        lambda p, n: p.reset_next_gets(n, PART, 10),
        "GET",
        "reset",
        lambda n: n,
        1,
    ),
    "GET stall mid-body, within s3fs's retries": (
        lambda p, n: p.stall_next_gets(1, PART, 10),
        "GET",
        "stall",
        lambda n: 1,
        0,
    ),
}


@pytest.mark.parametrize("fault", list(S3_FAULTS))
def test_s3_destination_fault_gives_identical_output(
    small_lerobot_dataset, s3_bucket, s3_proxy, clean_local, tmp_path: Path, fault: str
) -> None:
    arm, method, kind, times, sink_retries = S3_FAULTS[fault]
    n = _s3fs_retries()
    arm(s3_proxy, n)
    options = s3_bucket.via(s3_proxy)
    options["config_kwargs"] = {**options["config_kwargs"], "read_timeout": TIMEOUT_S}  # a stall times out in 1 s
    summary = run(
        str(small_lerobot_dataset.root),
        s3_bucket.url("out"),
        dest_options=options,
        staging_dir=str(tmp_path / "staging"),
    )
    assert s3_output_bytes(s3_bucket.fs, f"{s3_bucket.name}/out") == clean_local  # every file, manifest included
    faulted = [f for m, _, _, f in s3_proxy.log if m == method and f]
    assert faulted == [kind] * times(n)
    assert summary.upload_retries == sink_retries  # s3fs retried the rest itself
