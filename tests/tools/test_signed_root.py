"""A converted root behind a signed URL (``https://host/root?sv=...&sig=SECRET``) is read like any other root.

The loopback server answers 403 to every request without the signature, as a bucket does, so each read, probe
and listing must carry the root's query after the member's path. The dataset's batches, its meta, ``verify``
and ``inspect`` equal the local root's, and the secret appears in no repr, log record, output or written file.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert import ConvertConfig, convert
from lerobot_wds.core.errors import LeRobotWdsError
from lerobot_wds.core.urls import join_url
from lerobot_wds.reader.meta import cache_key
from lerobot_wds.tools.verify.run import VerifyConfig, verify

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]
SECRET = "SIGSECRET"
QUERY = f"sv=2022-11-02&se=2030-01-01&sig={SECRET}"


def test_join_url_keeps_a_signed_roots_query_after_the_member_path() -> None:
    assert join_url(f"https://h/c/root/?{QUERY}", "shards/x.tar") == f"https://h/c/root/shards/x.tar?{QUERY}"
    assert join_url("s3://b/root", "manifest.json") == "s3://b/root/manifest.json"
    assert join_url("/data/a?b/", "x") == "/data/a?b/x"  # a local path's "?" is part of its name


def _batches(root: str) -> list[dict[str, np.ndarray]]:
    ds = LeRobotWdsDataset(root, batch_size=4, shuffle=False, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=None)
    return [{k: v.numpy() for k, v in b.items() if isinstance(v, torch.Tensor)} for b in loader]


def test_a_signed_root_reads_verifies_and_inspects_like_the_local_root(
    small_lerobot_dataset, http_dir_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lerobot_wds")
    dest = tmp_path / "wds"
    convert(ConvertConfig(source=str(small_lerobot_dataset.root), dest=str(dest), progress=False, workers=1))
    server = http_dir_server(dest, require_query={"sig": SECRET})
    root = f"{server.url}/?{QUERY}"

    local, remote = _batches(str(dest)), _batches(root)
    assert sum(len(b["index"]) for b in remote) == 28  # 5 + 12 + 3 + 8 frames
    assert [sorted(b) for b in remote] == [sorted(b) for b in local]
    for got, want in zip(remote, local, strict=True):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)  # decoded pixels and rows

    ds = LeRobotWdsDataset(root, meta_cache_dir=tmp_path / "meta-cache")
    assert ds.meta.info["total_episodes"] == 4  # meta/ listed and fetched through the signature
    renewed = root.replace(SECRET, "RENEWED")  # a new signature of the same root: the same meta cache
    assert cache_key(renewed, ds.manifest) == cache_key(root, ds.manifest) != cache_key(server.url, ds.manifest)
    report = verify(VerifyConfig(dest=root, progress=False, retries=0))
    assert report.ok and (report.shards, report.episodes, report.frames) == (1, 4, 28), report.to_text()
    (dest / "shards" / "shard-000099.tar").write_bytes(b"\0" * 1024)  # listing the shards works too
    unlisted = verify(VerifyConfig(dest=root, progress=False, retries=0))
    assert [(f.check, f.shard) for f in unlisted.findings] == [("unlisted-shard", "shards/shard-000099.tar")]
    (dest / "shards" / "shard-000099.tar").unlink()

    inspect = subprocess.run([*CLI, "inspect", root], capture_output=True, text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr
    assert "episodes: 4" in inspect.stdout and "frames:   28" in inspect.stdout
    checked = subprocess.run([*CLI, "verify", root, "--no-progress"], capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "OK (1 shards, 4 episodes, 28 frames" in checked.stdout, checked

    denied = [r for r in server.stats().log if r.status == 403]
    assert denied == [], denied  # every request carried the signature
    said = "\n".join(
        [
            repr(ds),
            json.dumps(ds.stats(), default=str),
            report.to_text() + report.to_json() + repr(report),
            inspect.stdout + inspect.stderr + checked.stdout + checked.stderr,
            *(r.getMessage() for r in caplog.records if r.name.startswith("lerobot_wds")),
        ]
    )
    assert SECRET not in said and "sv=2022-11-02" in said
    written = [p for d in (dest, tmp_path / "meta-cache") for p in d.rglob("*") if p.is_file()]
    assert written and [p for p in written if SECRET.encode() in p.read_bytes()] == []


def test_a_signed_root_without_its_signature_is_one_error_naming_no_secret(wds_root: Path, http_dir_server):
    server = http_dir_server(wds_root, require_query={"sig": SECRET})
    with pytest.raises(LeRobotWdsError) as e:
        LeRobotWdsDataset(f"{server.url}/?sv=2022-11-02&sig=WRONG{SECRET}")
    assert SECRET not in str(e.value) and "403" in str(e.value), str(e.value)
    assert LeRobotWdsDataset(f"{server.url}/?{QUERY}").manifest.total_episodes == 8  # with it, it opens


def test_a_signed_source_converts_to_the_same_shards(small_lerobot_dataset, http_dir_server, tmp_path: Path):
    local, signed = tmp_path / "local", tmp_path / "signed"
    convert(ConvertConfig(source=str(small_lerobot_dataset.root), dest=str(local), progress=False, workers=1))
    server = http_dir_server(small_lerobot_dataset.root, require_query={"sig": SECRET})
    convert(ConvertConfig(source=f"{server.url}/?{QUERY}", dest=str(signed), progress=False, workers=1))
    assert [r for r in server.stats().log if r.status == 403] == []  # meta/ listed and files read, signed
    shards = sorted(p.relative_to(local) for p in (local / "shards").iterdir())
    assert shards and sorted(p.relative_to(signed) for p in (signed / "shards").iterdir()) == shards
    for rel in shards:
        assert (signed / rel).read_bytes() == (local / rel).read_bytes(), rel
    written = [p for p in signed.rglob("*") if p.is_file()]
    assert [p for p in written if SECRET.encode() in p.read_bytes()] == []
    assert "sv=2022-11-02" in (signed / "manifest.json").read_text()  # the source named, its signature not
