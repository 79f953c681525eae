"""A signed URL (``?sv=...&sig=SECRET``) and a ``user:pass@`` URL go through every path that logs, prints or writes
a root (convert, read, train, verify as a library, bench; train-lerobot in test_conformance_train.py), and the
secret appears nowhere: not in stdout, stderr, log records, written files or checkpoints.

The ``user:pass@`` roots are real (the loopback HTTP server ignores the credentials and serves the root); signed
roots are fed to the derived names, the records and reports, and the errors that name a folder that is no root
(a signed root read end to end, its query required by the server, is test_signed_root.py's).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.convert import ConvertConfig, convert
from lerobot_wds.core.errors import LeRobotWdsError
from lerobot_wds.tools.bench.peers.guard import run_guarded
from lerobot_wds.tools.bench.records import record_header
from lerobot_wds.tools.bench.scenarios import BenchConfig
from lerobot_wds.tools.report import Finding, Report
from lerobot_wds.tools.train_lerobot.pipeline import lerobot_argv, repo_name
from lerobot_wds.tools.verify.run import VerifyConfig, verify

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]
SECRETS = ("PWSECRET", "SIGSECRET", "reader:")


def with_user(url: str) -> str:
    return url.replace("http://", "http://reader:PWSECRET@", 1)


def signed(url: str) -> str:
    return f"{url.rstrip('/')}?sv=2022-11-02&se=2030-01-01&sig=SIGSECRET"


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def file_leaks(*dirs: Path) -> list[str]:
    files = [p for d in dirs for p in d.rglob("*") if p.is_file()]
    assert files, dirs
    return [str(p) for p in files if any(s.encode() in p.read_bytes() for s in SECRETS)]


def test_derived_repo_ids_and_bench_headers_carry_no_secret() -> None:
    for root in (signed("https://acct.blob.core.windows.net/c/wds"), with_user("http://h:8/data/wds/")):
        assert repo_name(root) == "wds"
        argv = lerobot_argv(root, ["--policy.type=act"])
        assert argv == ["--policy.type=act", "--dataset.repo_id=lerobot_wds/wds", "--dataset.streaming=true"]
        header = record_header(BenchConfig(root, meta_root=root))
        assert leaks(json.dumps(header)) == [], header
    assert repo_name("/data/runs/wds/") == "wds"


def test_convert_and_read_through_a_user_pass_url_say_no_secret(
    small_lerobot_dataset, http_dir_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lerobot_wds")  # ours (fsspec's own DEBUG lines name every URL)
    source = with_user(http_dir_server(small_lerobot_dataset.root).url)
    dest = tmp_path / "wds"
    convert(ConvertConfig(source=source, dest=str(dest), progress=False, workers=1, order="source"))
    root = with_user(http_dir_server(dest).url)
    ds = LeRobotWdsDataset(root, batch_size=4, seed=1)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=None)))
    assert batch["observation.images.front"].shape[0] == 4  # it read through the URL
    said = "\n".join(
        [
            repr(ds),
            json.dumps(ds.stats(), default=str),
            *(r.getMessage() for r in caplog.records if r.name.startswith("lerobot_wds")),
        ]
    )
    assert "was converted with --order source" in said  # the warning names the root, without the password
    assert leaks(said) == [] and file_leaks(dest) == []
    with pytest.raises(LeRobotWdsError) as e:
        LeRobotWdsDataset(signed(http_dir_server(tmp_path).url))  # a folder with no conversion in it
    assert leaks(str(e.value)) == [] and "sv=2022-11-02" in str(e.value), str(e.value)  # named, redacted


def test_verify_as_a_library_reports_no_secret(wds_root: Path, http_dir_server, tmp_path: Path) -> None:
    root = with_user(http_dir_server(wds_root).url)
    report = verify(VerifyConfig(dest=root, progress=False))
    assert report.ok and report.episodes > 0
    with pytest.raises(LeRobotWdsError) as unreadable:  # could not run: no conversion there
        verify(VerifyConfig(dest=signed(with_user(http_dir_server(tmp_path).url)), progress=False, retries=0))
    assert leaks(str(unreadable.value)) == [] and "sv=2022-11-02" in str(unreadable.value), str(unreadable.value)
    built = Report(root=signed(root), source=with_user("http://h/src?token=SIGSECRET"))
    built.add([Finding("read", f"{signed(root)}/shards/x.tar: 404")])
    for r in (report, built):
        assert leaks(r.to_text() + r.to_json() + repr(r)) == [], r.to_text()
    assert built.summary().startswith(f"verify {http_dir_server(wds_root).url.split('://')[0]}://")


def test_train_and_bench_commands_write_and_print_no_secret(
    wds_root: Path, http_dir_server, tmp_path: Path
) -> None:
    root = with_user(http_dir_server(wds_root).url)
    ckpt, samples = tmp_path / "ckpt", tmp_path / "samples"
    samples.mkdir()
    train = [
        *CLI, "train", root, "--batch-size", "4", "--num-workers", "0", "--max-steps", "4", "--log-every", "2",
        "--checkpoint-every", "2", "--checkpoint-dir", str(ckpt), "--log-samples", str(samples / "{rank}.jsonl"),
        "--device", "cpu",
    ]  # fmt: skip
    bench = [
        *CLI,
        "bench",
        root,
        "--out",
        str(tmp_path / "bench"),
        "--num-workers",
        "0",
        "--num-batches",
        "2",
        "--warmup",
        "1",
        "--batch-size",
        "4",
    ]
    for cmd in (train, bench):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert leaks(proc.stdout + proc.stderr) == []
    assert file_leaks(ckpt, samples, tmp_path / "bench") == []
    failed = run_guarded(
        BenchConfig(signed(with_user("http://127.0.0.1:9/wds")), loader="lerobot-streaming"),
        timeout_s=120,
        max_rss_bytes=2**34,
    )
    assert failed["status"] == "failed" and leaks(json.dumps(failed)) == [], failed
