"""``lerobot-wds verify`` on real conversions of real LeRobot v3 fixtures, clean and deliberately damaged.

Each damage test copies one converted root, breaks it in one way (flipped byte, truncation, dropped member,
episode in two shards, rows edited, mini-MP4s swapped) and asserts the exact findings: check, shard,
episode, camera and member. Where the damage would also change the shard's sha256, the manifest entry is
re-computed so the finding under test is the only one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from verify_helpers import Members, read_manifest, read_members, rewrite_shard, shift_video_start

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.convert.source import LeRobotSource
from lerobot_wds.core.progress import Progress
from lerobot_wds.tools.cli import main
from lerobot_wds.tools.report import Finding
from lerobot_wds.tools.verify.decode import DecodeParityCheck, pick_frames
from lerobot_wds.tools.verify.run import VerifyConfig, _count_into, _rollback, verify
from lerobot_wds.tools.verify.shard import check_shard

FRONT = "observation.images.front"
WRIST = "observation.images.wrist"
S0, S1 = "shards/shard-000000.tar", "shards/shard-000001.tar"


@pytest.fixture(scope="module")
def converted(small_lerobot_dataset, tmp_path_factory) -> Path:
    """The small fixture (episodes of 5, 12, 3, 8 frames) converted into two shards: [0, 1, 2] and [3]."""
    dest = tmp_path_factory.mktemp("verify") / "converted"
    # source order (not the default shuffle): the checks below name episodes by their place in the shards
    convert(
        ConvertConfig(
            str(small_lerobot_dataset.root), str(dest), target_shard_bytes=50_000, order="source", progress=False
        )
    )
    manifest = read_manifest(dest)
    assert [(s.path, s.episodes, s.frames) for s in manifest.shards] == [(S0, [0, 1, 2], 20), (S1, [3], 8)]
    return dest


@pytest.fixture
def damaged(converted, tmp_path) -> Path:
    """A private copy of the converted root to break."""
    return Path(shutil.copytree(converted, tmp_path / "root"))


def findings(root: Path, **kw) -> list[Finding]:
    return verify(VerifyConfig(str(root), progress=False, **kw)).findings


def test_clean_conversion_passes_every_check(converted, small_lerobot_dataset, capsys):
    code = main(
        [
            "verify",
            str(converted),
            "--source",
            str(small_lerobot_dataset.root),
            "--decode",
            "2",
            "--no-progress",
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["findings"]
    assert report["ok"] and report["findings"] == []
    assert (report["shards"], report["episodes"], report["frames"]) == (2, 4, 28)
    assert report["bytes"] == sum(p.stat().st_size for p in (converted / "shards").glob("*.tar"))
    # 2 frames (first and last) of each of 4 episodes and 2 cameras were decoded from both sides
    assert report["decoded_frames"] == 2 * 4 * 2


def test_flipped_byte_is_named(damaged, capsys):
    path = damaged / S0
    data = bytearray(path.read_bytes())
    with tarfile.open(path) as tar:
        info = tar.getmember("episode_000001.json")
    last = info.offset_data + info.size - 1  # the JSON's closing brace
    assert data[last : last + 1] == b"}"
    data[last] ^= 0x01
    path.write_bytes(bytes(data))
    got = findings(damaged)
    expected_sha = read_manifest(damaged).shards[0].sha256
    assert [(f.check, f.shard, f.episode, f.member) for f in got] == [
        ("json", S0, 1, "episode_000001.json"),
        ("sha256", S0, None, None),
        ("extent-sha256", S0, 1, None),  # the episode's own digest (manifest v2) names it too
    ]
    assert got[1].message == f"{hashlib.sha256(data).hexdigest()}, manifest says {expected_sha}"
    assert main(["verify", str(damaged), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"shard {S0}, episode 1, member episode_000001.json: [json]" in out
    assert f"shard {S0}: [sha256]" in out


def test_manifest_extents_are_checked(damaged):
    manifest = json.loads((damaged / "manifest.json").read_text())
    ext = manifest["shards"][0]["extents"]
    ext[2]["offset"] += 512  # no longer where episode 1 ends, and its bytes are others
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    got = [(f.check, f.shard, f.episode) for f in findings(damaged)]
    assert got == [("extent", S0, 2), ("extent-sha256", S0, 2)]


def test_truncated_shard_is_named(damaged):
    path = damaged / S0
    full = path.stat().st_size
    with tarfile.open(path) as tar:
        cut = tar.getmember("episode_000001.parquet").offset_data + 100  # inside episode 1's rows
    path.write_bytes(path.read_bytes()[:cut])
    got = findings(damaged)
    checks = [(f.check, f.shard, f.episode) for f in got]
    assert checks == [
        ("tar", S0, None),
        ("size", S0, None),
        ("sha256", S0, None),
        ("frames", S0, None),
        ("missing-episode", S0, 1),
        ("missing-episode", S0, 2),
    ]
    assert got[1].message == f"{cut} bytes, manifest says {full}"
    assert got[3].message == "episodes found hold 5 frames, manifest says 20"


def test_dropped_member_is_named(damaged):
    member = f"episode_000001.{WRIST}.mp4"
    rewrite_shard(damaged, S0, lambda ms: [(n, d) for n, d in ms if n != member], fix_manifest=True)
    assert findings(damaged) == [Finding("missing-member", "required member is absent", S0, 1, WRIST, member)]


def test_extra_and_duplicate_members_are_named(damaged):
    def edit(ms: Members) -> Members:
        out = []
        for n, d in ms:
            out.append((n, d))
            if n == "episode_000003.parquet":
                out += [(n, d), ("episode_000003.notes.txt", b"hi")]
        return out

    rewrite_shard(damaged, S1, edit, fix_manifest=True)
    got = [(f.check, f.shard, f.episode, f.member) for f in findings(damaged)]
    assert got == [
        ("duplicate-member", S1, 3, "episode_000003.parquet"),
        ("extra-member", S1, 3, "episode_000003.notes.txt"),
    ]


def test_episode_in_two_shards_is_named(damaged):
    ep0 = [(n, d) for n, d in read_members(damaged / S0) if n.startswith("episode_000000.")]
    rewrite_shard(damaged, S1, lambda ms: ms + ep0, fix_manifest=True)
    got = findings(damaged)
    assert [(f.check, f.shard, f.episode) for f in got] == [
        ("frames", S1, None),
        ("duplicate-episode", S1, 0),
        ("unlisted-episode", S1, 0),
    ]
    assert got[1].message == f"episode found in shards {[S0, S1]}; it must appear exactly once"


def test_missing_manifest_fails(damaged, capsys):
    (damaged / "manifest.json").unlink()
    assert main(["verify", str(damaged), "--no-progress"]) == 1
    assert "[manifest]" in capsys.readouterr().out


def test_rows_differing_from_source_are_named(damaged, small_lerobot_dataset):
    def edit(ms: Members) -> Members:
        out = []
        for n, d in ms:
            if n == "episode_000003.parquet":
                t = pq.read_table(io.BytesIO(d))
                col = t.column("action").to_pylist()
                col[4] = [v + 1.0 for v in col[4]]
                t = t.set_column(
                    t.schema.get_field_index("action"),
                    t.schema.field("action"),
                    pa.array(col, t.schema.field("action").type),
                )
                buf = io.BytesIO()
                pq.write_table(t, buf)
                d = buf.getvalue()
            out.append((n, d))
        return out

    rewrite_shard(damaged, S1, edit, fix_manifest=True)
    assert findings(damaged) == []  # structurally fine: only the source can tell
    got = findings(damaged, source=str(small_lerobot_dataset.root))
    assert [(f.check, f.shard, f.episode, f.member) for f in got] == [("rows", S1, 3, "episode_000003.parquet")]
    assert got[0].message.startswith("column 'action' row 4: ")


def test_decode_detects_swapped_videos(make_lerobot_dataset, tmp_path, capsys):
    fx = make_lerobot_dataset(episode_lengths=(6, 6, 6))
    dest = tmp_path / "out"
    convert(ConvertConfig(str(fx.root), str(dest), progress=False))
    a, b = f"episode_000000.{FRONT}.mp4", f"episode_000001.{FRONT}.mp4"

    def swap(ms: Members) -> Members:
        data = dict(ms)
        return [(n, data[b] if n == a else data[a] if n == b else d) for n, d in ms]

    rewrite_shard(dest, S0, swap, fix_manifest=True)
    # same frame counts, codec and size: only decoding tells the episodes apart
    assert findings(dest, source=str(fx.root)) == []
    got = findings(dest, source=str(fx.root), decode_frames=3)
    assert [(f.check, f.shard, f.episode, f.camera, f.member) for f in got] == [
        ("decode", S0, 0, FRONT, a),
        ("decode", S0, 0, FRONT, a),
        ("decode", S0, 0, FRONT, a),
        ("decode", S0, 1, FRONT, b),
        ("decode", S0, 1, FRONT, b),
        ("decode", S0, 1, FRONT, b),
    ]
    assert [f.message.split(" (")[0] for f in got[:3]] == ["episode frame 0", "episode frame 2", "episode frame 5"]
    assert main(["verify", str(dest), "--source", str(fx.root), "--decode", "3", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"shard {S0}, episode 1, camera {FRONT}, member {b}: [decode] episode frame 5" in out


def test_skipped_episodes_and_subsets_verify_clean(small_lerobot_dataset, tmp_path):
    src = Path(shutil.copytree(small_lerobot_dataset.root, tmp_path / "src"))
    shift_video_start(src, 1, WRIST, 0.25)  # episode 1's wrist video now starts 2.5 frames late
    dest = tmp_path / "out"
    convert(ConvertConfig(str(src), str(dest), on_error="skip", episodes=(0, 1, 3), progress=False))
    assert [e["episode_index"] for e in read_manifest(dest).skipped] == [1]
    assert findings(dest, source=str(src), decode_frames=1) == []
    # an episode the manifest claims to have selected but that is nowhere is a coverage finding
    m = read_manifest(dest)
    widened = replace(m, options={**m.options, "episodes": [0, 1, 2, 3]})
    (dest / "manifest.json").write_bytes(widened.to_json_bytes())
    assert findings(dest, source=str(src)) == [
        Finding("coverage", "selected for conversion but neither in a shard nor recorded as skipped", episode=2)
    ]


def test_pick_frames_is_deterministic_and_spans_the_episode():
    assert pick_frames(12, 2) == [0, 11]
    assert pick_frames(12, 4) == [0, 4, 7, 11]
    assert pick_frames(3, 5) == [0, 1, 2]
    assert pick_frames(1, 3) == [0]
    assert pick_frames(7, 1) == [0]


def test_decode_without_source_is_a_usage_error(converted, capsys):
    assert main(["verify", str(converted), "--decode", "2", "--no-progress"]) == 2
    assert "needs a source" in capsys.readouterr().err


def test_missing_and_unlisted_shard_files_are_named(damaged):
    (damaged / S1).rename(damaged / "shards" / "shard-000009.tar")
    got = findings(damaged)
    assert [(f.check, f.shard, f.episode) for f in got] == [
        ("unlisted-shard", "shards/shard-000009.tar", None),
        ("missing-shard", S1, None),
    ]


def test_sample_split_in_two_is_named(damaged):
    def edit(ms: Members) -> Members:  # move episode 0's parquet after episode 1's members
        moved = [m for m in ms if m[0] == "episode_000000.parquet"]
        rest = [m for m in ms if m[0] != "episode_000000.parquet"]
        cut = max(i for i, (n, _) in enumerate(rest) if n.startswith("episode_000001.")) + 1
        return rest[:cut] + moved + rest[cut:]

    rewrite_shard(damaged, S0, edit, fix_manifest=True)
    got = [(f.check, f.shard, f.episode, f.member) for f in findings(damaged)]
    assert got == [
        ("missing-member", S0, 0, "episode_000000.parquet"),
        ("non-contiguous", S0, None, None),
        ("missing-member", S0, 0, "episode_000000.json"),
        ("missing-member", S0, 0, f"episode_000000.{FRONT}.mp4"),
        ("missing-member", S0, 0, f"episode_000000.{WRIST}.mp4"),
    ]


def test_verify_over_http(converted, small_lerobot_dataset, http_dir_server):
    dest = http_dir_server(converted)
    src = http_dir_server(small_lerobot_dataset.root)
    report = verify(VerifyConfig(dest.url, source=src.url, decode_frames=2, progress=False))
    assert report.ok, report.to_text()
    assert (report.shards, report.episodes, report.frames, report.decoded_frames) == (2, 4, 28, 16)
    # every shard was read exactly once, in full (sha256), plus the manifest
    shard_bytes = sum(r.bytes_sent for r in dest.stats().log if r.path.endswith(".tar") and r.method == "GET")
    assert shard_bytes == report.bytes


def test_connection_cut_more_often_than_retried_is_named(converted, http_dir_server):
    dest = http_dir_server(converted)
    dest.inject_fault(f"/{S0}", cut_requests=5, cut_after_bytes=5000)
    got = findings(dest.url, retries=1, retry_backoff_s=0.0)
    assert [(f.check, f.shard) for f in got] == [("read", S0)]
    # fsspec reads the whole (small) shard as one block, so the cut delivers no byte to the tar parser
    assert got[0].message.startswith(f"reading {dest.url}/{S0} failed after 0 bytes (2 attempts): ")
    assert "received 5000 of" in got[0].message
    # one finding for two attempts: the second attempt's, nothing repeated from the first
    cut = [r for r in dest.stats().for_path(f"/{S0}") if r.method == "GET"]
    assert [r.bytes_sent for r in cut] == [5000, 5000]


def _shard_statuses(server, shard: str) -> list[int]:
    return [r.status for r in server.stats().for_path(f"/{shard}")]


def test_transient_503s_are_retried_and_verify_passes(converted, http_dir_server, caplog):
    dest = http_dir_server(converted)
    dest.inject_fault(f"/{S0}", fail_requests=2)
    dest.inject_fault("/manifest.json", fail_requests=2)
    with caplog.at_level(logging.WARNING, logger="lerobot_wds.tools.verify.shard"):
        report = verify(VerifyConfig(dest.url, progress=False, retries=2, retry_backoff_s=0.0))
    assert report.ok, report.to_text()
    assert _shard_statuses(dest, "manifest.json") == [503, 503, 200]
    assert (report.shards, report.episodes, report.frames) == (2, 4, 28)
    statuses = _shard_statuses(dest, S0)
    assert statuses[:2] == [503, 503] and set(statuses[2:]) <= {200, 206} and len(statuses) > 2
    assert f"reading {dest.url}/{S0} failed after 0 bytes (attempt 1 of 3: " in caplog.text
    # the retried shard was read in full exactly once more: report bytes are the files' sizes
    assert report.bytes == sum(p.stat().st_size for p in (converted / "shards").glob("*.tar"))


def test_more_503s_than_retries_fail_naming_the_shard(converted, http_dir_server, capsys):
    dest = http_dir_server(converted)
    dest.inject_fault(f"/{S0}", fail_requests=1000)
    code = main(["verify", dest.url, "--retries", "2", "--retry-backoff", "0", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"shard {S0}: [read] reading {dest.url}/{S0} failed after 0 bytes (3 attempts): " in out
    assert "503" in out and f"shard {S1}" not in out
    statuses = _shard_statuses(dest, S0)
    assert set(statuses) == {503} and len(statuses) >= 3  # every attempt asked the server
    # the same faults within the retry budget pass: the flags reach the config
    dest.inject_fault(f"/{S0}", fail_requests=len(statuses))
    assert main(["verify", dest.url, "--retries", "5", "--retry-backoff", "0", "--no-progress"]) == 0


def test_manifest_failing_more_often_than_retried_could_not_run(converted, http_dir_server, capsys):
    """An unreachable manifest is no finding about the data: verify could not run (exit 2), as inspect."""
    from lerobot_wds.core.errors import InputError

    dest = http_dir_server(converted)
    dest.inject_fault("/manifest.json", fail_requests=2)
    with pytest.raises(InputError, match=rf"^{dest.url}/manifest\.json: still failing after 2 attempts \(.*503"):
        findings(dest.url, retries=1, retry_backoff_s=0.0)
    assert _shard_statuses(dest, "manifest.json") == [503, 503]
    dest.inject_fault("/manifest.json", fail_requests=2)
    assert main(["verify", dest.url, "--retries", "1", "--retry-backoff", "0"]) == 2
    assert capsys.readouterr().err.startswith(
        f"lerobot-wds verify: error: {dest.url}/manifest.json: still failing"
    )


def test_404_is_not_retried(converted, http_dir_server):
    dest = http_dir_server(converted)
    # two 404s answer the size request (HEAD, then GET): any retry would find the shard
    dest.inject_fault(f"/{S0}", fail_requests=2, status=404)
    got = findings(dest.url, retries=5, retry_backoff_s=0.0)
    assert [(f.check, f.shard) for f in got] == [("missing-shard", S0)]
    assert _shard_statuses(dest, S0) == [404, 404]


def test_restart_mid_shard_discards_the_failed_attempt(converted, small_lerobot_dataset, http_dir_server):
    dest = http_dir_server(converted)
    fs, root = fsspec.core.url_to_fs(dest.url, block_size=4096)  # small blocks: reads go on after sample 0
    manifest = read_manifest(converted)
    decode = DecodeParityCheck(LeRobotSource(str(small_lerobot_dataset.root)), 2)
    seen: list[int] = []

    def cut_after_first_sample(shard, meta, rows, members) -> list[Finding]:
        seen.append(meta.episode_index)
        if len(seen) == 1:  # the next block request of this attempt is cut
            dest.inject_fault(f"/{S0}", cut_requests=1, cut_after_bytes=100)
        return [Finding("seen", "sample checked", shard, meta.episode_index)]

    progress = Progress(3, "verify", "episodes", enabled=False)
    hooks = (_count_into(progress), decode, cut_after_first_sample)
    try:
        res = check_shard(
            fs,
            f"{root}/{S0}",
            manifest.shards[0],
            manifest,
            hooks,
            retries=1,
            backoff_s=0.0,
            on_restart=_rollback(decode, progress, 0),
        )
    finally:
        decode.close()
    assert progress.n == 3  # episodes counted by the failed attempt do not count either
    assert seen == [0, 0, 1, 2]  # the restart began again with the first sample
    assert [(f.check, f.episode) for f in res.findings] == [("seen", 0), ("seen", 1), ("seen", 2)]
    size = (converted / S0).stat().st_size
    assert (res.episodes, res.frames, res.bytes, res.opened) == ([0, 1, 2], 20, size, True)
    # 2 frames x 2 cameras x 3 episodes: frames decoded by the failed attempt do not count
    assert decode.decoded_frames == 12
    assert [r.bytes_sent for r in dest.stats().for_path(f"/{S0}") if r.status == 206].count(100) == 1


def test_verify_and_inspect_over_s3(converted, s3_bucket, capsys):
    for p in sorted(converted.rglob("*")):
        if p.is_file():
            s3_bucket.fs.put_file(str(p), f"{s3_bucket.name}/root/{p.relative_to(converted).as_posix()}")
    url = s3_bucket.url("root")
    assert findings(url, dest_options=s3_bucket.options) == []
    options = json.dumps(s3_bucket.options)
    assert main(["inspect", url, "--json", "--dest-options", options]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 28
    s3_bucket.fs.rm_file(f"{s3_bucket.name}/root/{S1}")
    assert main(["verify", url, "--dest-options", options, "--no-progress"]) == 1
    assert f"shard {S1}: [missing-shard]" in capsys.readouterr().out
