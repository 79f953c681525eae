"""Converter against real loopback servers: moto S3 destination (through s3fs), HTTP source (through fsspec)."""

from __future__ import annotations

import pytest
from convert_helpers import output_bytes, s3_output_bytes

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.errors import SinkError
from lerobot_wds.convert.pipeline import convert


def cfg(src, dest, **kw) -> ConvertConfig:
    return ConvertConfig(source=str(src), dest=str(dest), progress=False, target_shard_bytes=1, **kw)


@pytest.fixture
def local_reference(small_lerobot_dataset, tmp_path):
    convert(cfg(small_lerobot_dataset.root, tmp_path / "ref"))
    return output_bytes(tmp_path / "ref")


def test_s3_destination_matches_local_and_retries_transient_errors(
    small_lerobot_dataset, s3_bucket, s3_proxy, local_reference, tmp_path
):
    s3_proxy.fail_next_puts(3, match="/shards/shard-")
    summary = convert(
        cfg(
            small_lerobot_dataset.root,
            s3_bucket.url("out"),
            dest_options=s3_bucket.via(s3_proxy),
            retry_backoff_s=0.01,
            staging_dir=str(tmp_path / "staging"),
        )
    )
    assert s3_proxy.failed == 3 and summary.upload_retries == 3
    assert s3_output_bytes(s3_bucket.fs, f"{s3_bucket.name}/out") == local_reference
    shard_sizes = [len(v) for k, v in local_reference.items() if k.startswith("shards/")]
    assert 0 < summary.peak_staging_bytes <= 2 * max(shard_sizes)
    assert not list((tmp_path / "staging").iterdir())  # the private staging dir is removed


def test_s3_upload_gives_up_after_attempts_naming_the_url(small_lerobot_dataset, s3_bucket, s3_proxy):
    s3_proxy.fail_next_puts(100, match="/shards/shard-000000.tar")
    with pytest.raises(SinkError, match=r"shards/shard-000000\.tar: still failing after 3 attempts"):
        convert(
            cfg(
                small_lerobot_dataset.root,
                s3_bucket.url("out"),
                dest_options=s3_bucket.via(s3_proxy),
                upload_attempts=3,
                retry_backoff_s=0.01,
            )
        )
    assert not s3_bucket.fs.exists(f"{s3_bucket.name}/out/manifest.json")


def test_s3_missing_bucket_is_a_permanent_error(small_lerobot_dataset, s3_bucket, s3_proxy):
    with pytest.raises(SinkError, match=r"s3://no-such-bucket/out/meta/.*permanent error"):
        convert(
            cfg(
                small_lerobot_dataset.root,
                "s3://no-such-bucket/out",
                dest_options=s3_bucket.via(s3_proxy),
                retry_backoff_s=0.01,
            )
        )
    assert s3_proxy.failed == 0


def test_http_source_gives_the_same_shards(small_lerobot_dataset, http_dir_server, local_reference, tmp_path):
    server = http_dir_server(small_lerobot_dataset.root)
    convert(cfg(server.url, tmp_path / "out", workers=2))
    got = output_bytes(tmp_path / "out")
    shards = {k: v for k, v in local_reference.items() if k.startswith(("shards/", "meta/"))}
    assert {k: v for k, v in got.items() if k.startswith(("shards/", "meta/"))} == shards
    assert server.stats().requests > 0


def test_http_source_retries_transient_read_errors(
    small_lerobot_dataset, http_dir_server, local_reference, tmp_path
):
    """503s and bodies cut mid-transfer on the source's video and data files are retried; output is unchanged."""
    server = http_dir_server(small_lerobot_dataset.root)
    ep = small_lerobot_dataset.episodes[1]
    video = (
        "/"
        + ep.videos[small_lerobot_dataset.camera_keys[0]].path.relative_to(small_lerobot_dataset.root).as_posix()
    )
    data = "/" + ep.data_path.relative_to(small_lerobot_dataset.root).as_posix()
    server.inject_fault(video, fail_requests=2, cut_requests=1, cut_after_bytes=100)
    server.inject_fault(data, fail_requests=2)
    convert(cfg(server.url, tmp_path / "out", workers=1, retry_backoff_s=0.01))
    got = output_bytes(tmp_path / "out")
    assert {k: v for k, v in got.items() if k.startswith("shards/")} == {
        k: v for k, v in local_reference.items() if k.startswith("shards/")
    }
    failed = [r for r in server.stats().log if r.status >= 500 and r.path in (video, data)]
    assert len(failed) == 4


def test_http_source_gives_up_naming_the_file(small_lerobot_dataset, http_dir_server, tmp_path):
    server = http_dir_server(small_lerobot_dataset.root)
    ep = small_lerobot_dataset.episodes[0]
    rel = ep.videos[small_lerobot_dataset.camera_keys[0]].path.relative_to(small_lerobot_dataset.root).as_posix()
    server.inject_fault("/" + rel, fail_requests=1000)
    with pytest.raises(Exception, match=rf"{rel}.*(still failing after 3 attempts|permanent error)"):
        convert(cfg(server.url, tmp_path / "out", workers=1, upload_attempts=3, retry_backoff_s=0.01))
