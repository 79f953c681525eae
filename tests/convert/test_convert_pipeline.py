"""End-to-end converter tests on real LeRobot v3 fixtures (real ffmpeg encodes), local source and destination."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from convert_helpers import check_episode_sample, output_bytes, read_manifest, read_tar, shard_samples

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.errors import ConvertError, EpisodeError, FinalizeError, PlanError
from lerobot_wds.convert.manifest_io import finalize
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.convert.plan import order_episodes
from lerobot_wds.convert.sink import open_sink
from lerobot_wds.core.format import member_names


def run(src: Path, dest: Path, **kw) -> object:
    return convert(ConvertConfig(source=str(src), dest=str(dest), progress=False, **kw))


def test_every_variant_converts_exactly(lerobot_variant, tmp_path):
    fx = lerobot_variant
    summary = run(fx.root, tmp_path / "out", target_shard_bytes=30_000, workers=2)
    manifest = read_manifest(tmp_path / "out")
    cams = [c.key for c in fx.spec.cameras]
    assert manifest.camera_keys == cams
    assert sorted(e for s in manifest.shards for e in s.episodes) == list(range(len(fx.episodes)))
    assert manifest.total_frames == sum(fx.spec.episode_lengths)
    assert summary.episodes == len(fx.episodes) and summary.manifest_written
    for shard in manifest.shards:
        data = (tmp_path / "out" / shard.path).read_bytes()
        assert len(data) == shard.bytes
        samples = shard_samples(data)
        assert list(samples) == shard.episodes
        assert shard.frames == sum(fx.episodes[e].length for e in shard.episodes)
        for ep, members in samples.items():
            assert list(members) == member_names(ep, cams)
            check_episode_sample(fx, members, ep)
    # the source meta is copied byte for byte
    for p in (fx.root / "meta").rglob("*"):
        if p.is_file():
            assert (tmp_path / "out" / p.relative_to(fx.root)).read_bytes() == p.read_bytes()


def test_tar_headers_are_deterministic(small_lerobot_dataset, tmp_path):
    run(small_lerobot_dataset.root, tmp_path / "out")
    manifest = read_manifest(tmp_path / "out")
    assert len(manifest.shards) == 1  # default target (64 MiB) holds everything
    for _, _, info in read_tar((tmp_path / "out" / manifest.shards[0].path).read_bytes()):
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (0, 0, 0, "", "", 0o644)


def test_two_runs_are_byte_identical_whatever_the_workers(small_lerobot_dataset, tmp_path):
    src = small_lerobot_dataset.root
    run(src, tmp_path / "a", target_shard_bytes=20_000, workers=1)
    run(src, tmp_path / "b", target_shard_bytes=20_000, workers=3, lookahead_episodes=1)
    a, b = output_bytes(tmp_path / "a"), output_bytes(tmp_path / "b")
    assert len([k for k in a if k.startswith("shards/")]) >= 2
    assert a == b


def test_parts_plus_finalize_equal_a_single_run(small_lerobot_dataset, tmp_path):
    src = small_lerobot_dataset.root
    run(src, tmp_path / "single", target_shard_bytes=1)  # one shard per episode: 4 shards over 3 parts
    for i in range(3):
        s = run(src, tmp_path / "parts", target_shard_bytes=1, part_index=i, part_count=3)
        assert not s.manifest_written
        assert not (tmp_path / "parts" / "manifest.json").exists()
        if i < 2:
            left = ", ".join(map(str, range(i + 1, 3)))
            with pytest.raises(FinalizeError, match=rf"parts \[{left}\] of 3 have not finished"):
                finalize(open_sink(str(tmp_path / "parts")))
    finalize(open_sink(str(tmp_path / "parts")))
    single = output_bytes(tmp_path / "single")
    assert len([k for k in single if k.startswith("shards/")]) == 4
    assert output_bytes(tmp_path / "parts") == single


def test_shuffle_is_seeded_and_subset_respected(small_lerobot_dataset, tmp_path):
    src = small_lerobot_dataset.root
    run(src, tmp_path / "s1", order="shuffle", seed=7, target_shard_bytes=1)
    run(src, tmp_path / "s2", order="shuffle", seed=7, target_shard_bytes=1)
    run(src, tmp_path / "s3", order="shuffle", seed=8, target_shard_bytes=1)
    order = [s.episodes[0] for s in read_manifest(tmp_path / "s1").shards]
    assert sorted(order) == [0, 1, 2, 3]
    assert output_bytes(tmp_path / "s1") == output_bytes(tmp_path / "s2")
    assert [s.episodes[0] for s in read_manifest(tmp_path / "s3").shards] != order or order == [0, 1, 2, 3]
    run(src, tmp_path / "sub", episodes=(3, 1), order="source")
    m = read_manifest(tmp_path / "sub")
    assert [s.episodes for s in m.shards] == [[1, 3]]  # source order; the subset's own order doesn't matter
    assert m.options["episodes"] == [3, 1] and m.total_frames == 12 + 8
    with pytest.raises(PlanError, match=r"episodes \[9\] are not in the source"):
        run(src, tmp_path / "bad", episodes=(1, 9))


def _break_episode_video(fx, dest: Path, episode: int, camera: str) -> Path:
    """Copies ``fx`` to ``dest`` with one camera's from_timestamp of ``episode`` shifted by 2.5 frames."""
    import shutil

    shutil.copytree(fx.root, dest)
    for p in (dest / "meta" / "episodes").rglob("*.parquet"):
        t = pq.read_table(p)
        if episode not in t.column("episode_index").to_pylist():
            continue
        col = f"videos/{camera}/from_timestamp"
        vals = [
            v + 2.5 / fx.spec.fps if e == episode else v
            for v, e in zip(t.column(col).to_pylist(), t.column("episode_index").to_pylist(), strict=True)
        ]
        t = t.set_column(t.schema.get_field_index(col), col, pa.array(vals, t.schema.field(col).type))
        pq.write_table(t, p)
    return dest


def test_bad_episode_raises_or_is_skipped(small_lerobot_dataset, tmp_path):
    cam = small_lerobot_dataset.spec.cameras[1].key
    src = _break_episode_video(small_lerobot_dataset, tmp_path / "src", 1, cam)
    with pytest.raises(EpisodeError, match=rf"episode 1: .*file-000\.mp4.*camera {cam}"):
        run(src, tmp_path / "raise")
    assert not (tmp_path / "raise" / "manifest.json").exists()
    run(src, tmp_path / "skip", on_error="skip", target_shard_bytes=1, order="source")
    m = read_manifest(tmp_path / "skip")
    assert [s.episodes for s in m.shards] == [[0], [2], [3]]  # shard 1 lost its only episode: no tar
    assert [(s["episode_index"], s["shard"]) for s in m.skipped] == [(1, "shards/shard-000001.tar")]
    assert cam in m.skipped[0]["reason"] and "frame" in m.skipped[0]["reason"]
    assert not (tmp_path / "skip" / "shards" / "shard-000001.tar").exists()
    for s in m.shards:
        for ep, members in shard_samples((tmp_path / "skip" / s.path).read_bytes()).items():
            check_episode_sample(small_lerobot_dataset, members, ep)


def test_resume_redoes_only_missing_or_wrong_shards(small_lerobot_dataset, tmp_path):
    src, out = small_lerobot_dataset.root, tmp_path / "out"
    run(src, out, target_shard_bytes=1)
    reference = output_bytes(out)
    # a finished single-part run keeps no bookkeeping: its manifest tells a re-run what is complete
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "meta", "shards"]
    again = run(src, out, target_shard_bytes=1)
    assert (again.shards_written, again.shards_resumed) == (0, 4)
    (out / "shards" / "shard-000001.tar").unlink()
    (out / "shards" / "shard-000002.tar").write_bytes(b"garbage")
    resumed = run(src, out, target_shard_bytes=1)
    assert (resumed.shards_written, resumed.shards_resumed) == (2, 2)
    assert output_bytes(out) == reference
    # same size, wrong content: only a sha256 resume check notices
    p = out / "shards" / "shard-000003.tar"
    p.write_bytes(bytes(len(p.read_bytes())))
    assert run(src, out, target_shard_bytes=1).shards_written == 0
    assert run(src, out, target_shard_bytes=1, resume_check="sha256").shards_written == 1
    assert output_bytes(out) == reference


def test_default_order_is_the_seeded_shuffle_and_source_keeps_source_order(small_lerobot_dataset, tmp_path):
    src = small_lerobot_dataset.root
    run(src, tmp_path / "default", target_shard_bytes=1)
    run(src, tmp_path / "seed0", order="shuffle", seed=0, target_shard_bytes=1)
    run(src, tmp_path / "source", order="source", target_shard_bytes=1)
    default = read_manifest(tmp_path / "default")
    assert [s.episodes for s in default.shards] == [[e] for e in order_episodes([0, 1, 2, 3], "shuffle", 0)]
    assert [s.episodes for s in default.shards] != [[0], [1], [2], [3]]  # seed 0 does permute these four
    assert default.options["order"] == "shuffle" and default.options["seed"] == 0
    assert output_bytes(tmp_path / "default") == output_bytes(tmp_path / "seed0")
    assert [s.episodes for s in read_manifest(tmp_path / "source").shards] == [[0], [1], [2], [3]]


def test_destination_with_other_options_is_refused(small_lerobot_dataset, tmp_path):
    run(small_lerobot_dataset.root, tmp_path / "out")
    with pytest.raises(ConvertError, match="already holds a different conversion") as e:
        run(small_lerobot_dataset.root, tmp_path / "out", order="source", seed=0, target_shard_bytes=1)
    # only the options that differ, in sorted order (seed is the same: not named)
    assert "(--order: 'shuffle' there, 'source' here; --target-shard-bytes: 67108864 there, 1 here)" in str(
        e.value
    )
    assert "seed" not in str(e.value) and "source:" not in str(e.value)


def test_manifest_records_options_source_and_totals(small_lerobot_dataset, tmp_path):
    run(small_lerobot_dataset.root, tmp_path / "out", target_shard_bytes=20_000, seed=3)
    raw = json.loads((tmp_path / "out" / "manifest.json").read_bytes())
    assert raw["options"] == {
        "target_shard_bytes": 20_000,
        "episodes": None,
        "order": "shuffle",
        "seed": 3,
        "on_error": "raise",
    }
    assert raw["source"]["url"] == str(small_lerobot_dataset.root) and raw["source"]["total_episodes"] == 4
    assert raw["totals"]["episodes"] == 4 and raw["totals"]["frames"] == 28
    assert raw["totals"]["bytes"] == sum((tmp_path / "out" / s["path"]).stat().st_size for s in raw["shards"])


def test_summary_reports_the_conversions_own_peak_rss(small_lerobot_dataset, tmp_path):
    """Memory the process used before converting (the demo: writing its dataset, importing torch) is not the
    converter's: the summary's peak is measured from the conversion's start."""
    import resource

    from lerobot_wds.core.peak_rss import PeakRss

    if not PeakRss(reset=True).since_start:
        pytest.skip("this kernel does not let a process reset its RSS high-water mark (/proc/self/clear_refs)")
    before = bytearray(b"\x01") * (300 * 1024 * 1024)  # every page written: the process peak grows ~300 MB
    del before  # a large block goes back to the kernel at once
    lifetime_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    src, dest = small_lerobot_dataset.root, tmp_path / "out"
    summary = convert(ConvertConfig(source=str(src), dest=str(dest), progress=False), rss=PeakRss(reset=True))
    assert summary.start_rss_bytes <= summary.peak_rss_bytes < lifetime_peak - 200 * 1024 * 1024
    assert f"peak RSS {summary.peak_rss_bytes / 1e6:.0f} MB ({summary.start_rss_bytes / 1e6:.0f} MB before" in (
        summary.line()
    )


def test_convert_as_a_library_leaves_the_callers_peak_rss_alone(small_lerobot_dataset, tmp_path):
    from lerobot_wds.core.peak_rss import PeakRss, _status_kib

    if not PeakRss(reset=True).since_start:
        pytest.skip("this kernel does not let a process reset its RSS high-water mark (/proc/self/clear_refs)")
    before = bytearray(b"\x01") * (300 * 1024 * 1024)  # the caller's peak: ~300 MB above what follows
    del before
    callers_peak = _status_kib("VmHWM")
    summary = run(small_lerobot_dataset.root, tmp_path / "out")
    assert _status_kib("VmHWM") >= callers_peak  # not reset to the RSS at the conversion's start
    assert summary.peak_rss_bytes >= callers_peak * 1024 > summary.start_rss_bytes + 200 * 1024 * 1024
