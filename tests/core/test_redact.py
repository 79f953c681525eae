"""Credentials in a URL (userinfo, presigned signatures, tokens) never reach a file we write or a line we print."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_wds import LeRobotWdsError
from lerobot_wds.core.redact import redact_text, redact_url

CLI = [sys.executable, "-m", "lerobot_wds.tools.cli"]
PRESIGNED = (
    "https://bucket.s3.amazonaws.com/ds/meta/info.json?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z"
    "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=SESSIONTOKEN"
    "&X-Amz-Signature=deadbeefsig"
)


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("https://user:hf_secret@host/ds", "https://host/ds"),
        ("https://hf_secret@host:8443/ds/", "https://host:8443/ds/"),
        (
            PRESIGNED,
            "https://bucket.s3.amazonaws.com/ds/meta/info.json?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host",
        ),
        ("https://account.blob.core.windows.net/c/ds?sv=2022-11-02&sig=abc%2Bdef&se=2026", None),
        ("https://host/ds?Signature=s&Key-Pair-Id=k&Policy=p&Expires=1", "https://host/ds?Expires=1"),
        ("https://host/ds?token=t&access_token=a&hf_token=h&page=2", "https://host/ds?page=2"),
        ("s3://key:secret@bucket/prefix", "s3://bucket/prefix"),
        ("/local/path?token=not-a-url", "/local/path?token=not-a-url"),
        ("hf://datasets/org/name@main", "hf://datasets/org/name@main"),  # a revision, not userinfo
    ],
)
def test_redact_url(url: str, want: str | None) -> None:
    got = redact_url(url)
    if want is None:  # Azure SAS: only the signature goes
        assert got == "https://account.blob.core.windows.net/c/ds?sv=2022-11-02&se=2026"
    else:
        assert got == want


def test_every_url_in_a_message_is_redacted() -> None:
    text = f"read 'https://u:pw@h/a' failed; then {PRESIGNED}: 403, url='http://x/y?sig=zz'"
    out = redact_text(text)
    for secret in ("pw", "deadbeefsig", "SESSIONTOKEN", "AKIAEXAMPLE", "zz"):
        assert secret not in out
    assert out.startswith("read 'https://h/a' failed; then https://bucket.s3.amazonaws.com/ds/meta/info.json?")
    err = LeRobotWdsError(f"{PRESIGNED}: denied")
    assert "deadbeefsig" not in str(err) and "SESSIONTOKEN" not in str(err) and str(err).endswith(": denied")


def test_convert_from_a_source_with_credentials_writes_and_prints_none(
    small_lerobot_dataset, http_dir_server, tmp_path: Path
) -> None:
    server = http_dir_server(small_lerobot_dataset.root)
    host = server.url.split("://", 1)[1]
    source = f"http://reader:PASSWORD123@{host}"
    stats = tmp_path / "stats.json"
    proc = subprocess.run(
        [*CLI, "convert", source, str(tmp_path / "out"), "--stats-json", str(stats), "--shard-size", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["source"]["url"] == f"http://{host}"
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] + [stats]
    names = {p.name for p in written}
    assert {"manifest.json", "info.json", "stats.json"} <= names and any(n.endswith(".tar") for n in names)
    leaks = [str(p) for p in written if b"PASSWORD123" in p.read_bytes() or b"reader:" in p.read_bytes()]
    assert leaks == []
    assert "PASSWORD123" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["convert", "inspect", "verify", "bench", "train"])
def test_errors_about_a_presigned_or_userinfo_url_print_no_secret(command: str, tmp_path: Path) -> None:
    for url in (
        "http://127.0.0.1:9/ds?X-Amz-Signature=SIGSECRET&X-Amz-Security-Token=TOKSECRET",  # nothing listens on 9
        "http://admin:PWSECRET@127.0.0.1:9/ds",
    ):
        args = {
            "convert": ["convert", url, str(tmp_path / "out"), "--upload-attempts", "1"],
            "inspect": ["inspect", url],
            "verify": ["verify", url, "--retries", "0"],
            "bench": ["bench", url, "--out", str(tmp_path / "bench"), "--num-workers", "0"],
            "train": ["train", url, "--dummy"],
        }[command]
        proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)
        said = proc.stdout + proc.stderr
        assert proc.returncode in (1, 2) and "127.0.0.1:9" in said, said[-2000:]
        assert not [s for s in ("SIGSECRET", "TOKSECRET", "PWSECRET") if s in said], said[-2000:]
        assert "Traceback" not in said


def test_text_without_credentials_is_unchanged_bare_schemes_included() -> None:
    text = "converted root: local path or fsspec URL (s3://, hf://, http://...); see hf://datasets/a@main."
    assert redact_text(text) == text
    assert redact_url("s3://") == "s3://" and redact_url("https://h/p?sv=1&se=2") == "https://h/p?sv=1&se=2"


def test_help_printed_by_the_console_keeps_url_schemes_whole() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lerobot_wds.tools.cli", "train-lerobot", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "(s3://, hf://," in proc.stdout, proc.stdout
