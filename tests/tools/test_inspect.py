"""``lerobot-wds inspect`` on a real conversion: exact numbers, text table, and only the shard's head read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from verify_helpers import shift_video_start

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.core.format import Manifest
from lerobot_wds.tools.cli import main

FRONT = "observation.images.front"
WRIST = "observation.images.wrist"


@pytest.fixture(scope="module")
def converted(small_lerobot_dataset, tmp_path_factory) -> Path:
    """The small fixture (AV1; episodes of 5, 12, 3, 8 frames) converted into shards [0, 1, 2] and [3]."""
    dest = tmp_path_factory.mktemp("inspect") / "converted"
    convert(
        ConvertConfig(
            str(small_lerobot_dataset.root), str(dest), target_shard_bytes=50_000, order="source", progress=False
        )
    )
    return dest


def sizes(root: Path) -> list[int]:
    return [(root / "shards" / f"shard-00000{i}.tar").stat().st_size for i in range(2)]


def test_json_summary_has_exact_numbers(converted, capsys):
    assert main(["inspect", str(converted), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    b0, b1 = sizes(converted)
    assert s["format"] == "lerobot-wds v2"
    assert (s["fps"], s["episodes"], s["frames"], s["shards"], s["bytes"]) == (10.0, 4, 28, 2, b0 + b1)
    assert s["skipped"] == []
    assert s["cameras_from_episode"] == 0
    assert s["cameras"] == {
        FRONT: {"codec": "av1", "width": 64, "height": 64, "feature_shape": [64, 64, 3]},
        WRIST: {"codec": "av1", "width": 96, "height": 72, "feature_shape": [72, 96, 3]},
    }
    assert s["shard_table"] == [
        {"path": "shards/shard-000000.tar", "bytes": b0, "episodes": 3, "frames": 20},
        {"path": "shards/shard-000001.tar", "bytes": b1, "episodes": 1, "frames": 8},
    ]


def test_text_summary(converted, capsys):
    assert main(["inspect", str(converted)]) == 0
    lines = capsys.readouterr().out.splitlines()
    b0, b1 = sizes(converted)
    assert lines[2:11] == [
        "fps:      10",
        "episodes: 4",
        "frames:   28 (2.8 s)",
        f"shards:   2 ({(b0 + b1) / 1e6:.2f} MB)",
        "skipped:  0 episodes",
        "cameras (from episode 0):",
        f"  {FRONT}: av1 64x64 (HxW)",
        f"  {WRIST}: av1 72x96 (HxW)",
        "path                            MB  episodes     frames",
    ]
    assert lines[11].split() == ["shards/shard-000000.tar", f"{b0 / 1e6:.3f}", "3", "20"]
    assert lines[12].split() == ["shards/shard-000001.tar", f"{b1 / 1e6:.3f}", "1", "8"]


def test_over_http_reads_only_the_manifest_and_the_first_shards_head(converted, http_dir_server, capsys):
    server = http_dir_server(converted)
    assert main(["inspect", server.url, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["episodes"], s["frames"], s["cameras"][WRIST]["width"]) == (4, 28, 96)
    stats = server.stats()
    manifest = Manifest.from_json_bytes((converted / "manifest.json").read_bytes())
    shard0 = f"/{manifest.shards[0].path}"
    touched = {r.path for r in stats.log if r.method == "GET"}
    assert touched == {"/manifest.json", shard0}
    sent = sum(r.bytes_sent for r in stats.for_path(shard0))
    assert 0 < sent < manifest.shards[0].bytes  # the head of the shard, not all of it


def test_missing_manifest_is_a_clear_error(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2  # could not run: no conversion there
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"lerobot-wds inspect: error: {tmp_path} is not a converted root (no manifest.json): run "
        f"'lerobot-wds convert SRC {tmp_path}' to convert a LeRobot v3 dataset into it"
    ]


def test_skipped_episodes_are_listed(small_lerobot_dataset, tmp_path, capsys):
    src = Path(shutil.copytree(small_lerobot_dataset.root, tmp_path / "src"))
    shift_video_start(src, 2, FRONT, 0.25)  # episode 2's front video now starts 2.5 frames late: skipped
    dest = tmp_path / "out"
    convert(ConvertConfig(str(src), str(dest), on_error="skip", target_shard_bytes=50_000, progress=False))
    assert main(["inspect", str(dest), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["episodes"], s["frames"]) == (3, 25)
    assert [(e["episode_index"], e["shard"]) for e in s["skipped"]] == [(2, "shards/shard-000000.tar")]
    assert [(r["episodes"], r["frames"]) for r in s["shard_table"]] == [(2, 17), (1, 8)]
    assert main(["inspect", str(dest)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[6] == "skipped:  1 episodes"
    assert lines[7].startswith("  episode 2: ") and FRONT in lines[7]


def _rewrite_shard0(
    src: Path, dest: Path, first_member: bytes | None = None, garbage: bool = False, pax: dict | None = None
) -> Path:
    """A copy of ``src`` whose shard 0 has its first member replaced (or pax headers added to it, or is
    garbage), manifest bytes updated."""
    import dataclasses
    import io
    import random
    import tarfile

    root = Path(shutil.copytree(src, dest))
    path = root / "shards" / "shard-000000.tar"
    if garbage:
        path.write_bytes(random.Random(7).randbytes(path.stat().st_size))
    else:
        out = io.BytesIO()
        fmt = tarfile.PAX_FORMAT if pax else tarfile.USTAR_FORMAT
        with tarfile.open(path) as tin, tarfile.open(fileobj=out, mode="w", format=fmt) as tout:
            for i, info in enumerate(tin.getmembers()):
                data = tin.extractfile(info).read()
                if i == 0 and first_member is not None:
                    data, info.size = first_member, len(first_member)
                if i == 0 and pax:
                    info.pax_headers = pax
                tout.addfile(info, io.BytesIO(data))
        path.write_bytes(out.getvalue())
    manifest = Manifest.from_json_bytes((root / "manifest.json").read_bytes())
    shards = [dataclasses.replace(manifest.shards[0], bytes=path.stat().st_size), *manifest.shards[1:]]
    (root / "manifest.json").write_bytes(dataclasses.replace(manifest, shards=shards).to_json_bytes())
    return root


def test_a_first_member_longer_than_the_head_read_is_read_whole(converted, tmp_path, http_dir_server, capsys):
    import tarfile

    with tarfile.open(converted / "shards" / "shard-000000.tar") as tar:
        first = tar.extractfile(tar.getmembers()[0]).read()
    padded = first + b" " * 40_000  # still the same JSON; the member now spans past the first 16 KiB read
    root = _rewrite_shard0(converted, tmp_path / "padded", first_member=padded)
    server = http_dir_server(root)
    assert main(["inspect", server.url, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    cams = s["cameras"]
    assert (s["cameras_from_episode"], cams[WRIST]["width"], cams[FRONT]["codec"]) == (0, 96, "av1")
    shard0 = server.stats().for_path("/shards/shard-000000.tar")
    assert [r.method for r in shard0] == ["GET", "GET"]  # 16 KiB, then the rest of the member's span
    assert sum(r.bytes_sent for r in shard0) == 512 + len(padded)  # one header block and the data, read once


def test_a_garbage_first_shard_is_one_line_naming_it(converted, tmp_path, capsys):
    root = _rewrite_shard0(converted, tmp_path / "garbage", garbage=True)
    assert main(["inspect", str(root)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shards/shard-000000.tar: no complete first member" in err[0], err


def test_a_first_member_header_longer_than_the_head_read_grows_the_read(
    converted, tmp_path, http_dir_server, capsys
):
    root = _rewrite_shard0(converted, tmp_path / "pax", pax={"comment": "x" * 40_000})  # a 40 kB pax header
    server = http_dir_server(root)
    assert main(["inspect", server.url, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["cameras_from_episode"], s["cameras"][WRIST]["width"]) == (0, 96)
    shard0 = server.stats().for_path("/shards/shard-000000.tar")
    size = (root / "shards" / "shard-000000.tar").stat().st_size
    assert [r.method for r in shard0] == ["GET", "GET"]  # 16 KiB, then on to 64 KiB: header and member inside
    assert sum(r.bytes_sent for r in shard0) == min(64 * 1024, size) and size > 64 * 1024
