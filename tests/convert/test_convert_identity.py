"""A conversion's source is its normalized location plus its content, never the string typed.

Resuming after a ``cd`` (``./lerobot_v3``) or with the absolute path is the same conversion and gives
byte-identical output; a changed dataset at the same place, or other options, is refused with only what
differs named.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from convert_helpers import output_bytes

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.errors import ConvertError
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.convert.source import source_location


def run(src: str, dest: str, **kw):
    return convert(ConvertConfig(source=src, dest=dest, progress=False, target_shard_bytes=1, **kw))


def test_source_location_normalizes_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = str(tmp_path / "data")
    for spelling in ("data", "./data", "data/", "./x/../data", f"file://{absolute}", absolute + "/"):
        assert source_location(spelling) == absolute, spelling
    assert source_location("s3://bucket/ds/") == "s3://bucket/ds"
    assert source_location("https://u:pw@host/ds?X-Amz-Signature=abc&v=1") == "https://host/ds?v=1"


def test_resume_after_cd_and_with_absolute_path_is_byte_identical(
    small_lerobot_dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    shutil.copytree(small_lerobot_dataset.root, work / "lerobot_v3")
    run(str(work / "lerobot_v3"), str(tmp_path / "ref"))
    reference = output_bytes(tmp_path / "ref")

    monkeypatch.chdir(tmp_path)
    first = run("work/lerobot_v3", "out")  # relative to tmp_path
    assert first.shards_written == 4 and output_bytes(tmp_path / "out") == reference
    # the last shard lost: the finished run's manifest says which shards are complete
    (tmp_path / "out" / "shards" / "shard-000003.tar").unlink()

    monkeypatch.chdir(work)  # the user's cd: the same source is now ./lerobot_v3
    resumed = run("./lerobot_v3", str(tmp_path / "out"))
    assert (resumed.shards_resumed, resumed.shards_written) == (3, 1)
    assert output_bytes(tmp_path / "out") == reference

    again = run(str(work / "lerobot_v3") + "/", str(tmp_path / "out"))  # absolute, trailing slash: all done
    assert (again.shards_resumed, again.shards_written) == (4, 0)
    assert output_bytes(tmp_path / "out") == reference
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_bytes())
    assert manifest["source"]["url"] == str(work / "lerobot_v3")


def test_changed_content_at_the_same_place_is_refused_naming_what_changed(
    small_lerobot_dataset, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    shutil.copytree(small_lerobot_dataset.root, src)
    run(str(src), str(tmp_path / "out"))
    info = json.loads((src / "meta" / "info.json").read_text())
    info["robot_type"] = "another robot"
    (src / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ConvertError) as e:
        run(str(src), str(tmp_path / "out"))
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'out'} already holds a different conversion (source meta/info.json: '")
    assert msg.count(" there, ") == 1  # only info.json differs: not the location, episodes or options
    assert msg.endswith("rerun with what it was made from to resume it, or convert into another destination")


def test_options_refusal_names_only_what_differs_in_a_stable_order(small_lerobot_dataset, tmp_path: Path) -> None:
    src = str(small_lerobot_dataset.root)
    run(src, str(tmp_path / "out"), order="shuffle", seed=1)
    with pytest.raises(ConvertError) as e:
        run(src, str(tmp_path / "out"), order="source", seed=2, episodes=(0, 1))
    assert str(e.value) == (
        f"{tmp_path / 'out'} already holds a different conversion (--episodes: None there, [0, 1] here; "
        "--order: 'shuffle' there, 'source' here; --seed: 1 there, 2 here): rerun with what it was made from "
        "to resume it, or convert into another destination"
    )
