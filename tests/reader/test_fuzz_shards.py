"""Fuzzing what the reader and ``verify`` parse from a converted root: shard tars, episode members, JSON.

Inputs come from a real conversion of the small LeRobot fixture (AV1, 2 cameras; shard 0 holds episodes
0, 1, 2 with their extents). Mutations: truncation, bit flips anywhere or inside a tar header or a member's
data, tar header fields rewritten with a valid checksum (size, name, type, link, magic), and for the JSON
members hypothesis-generated values and real documents with a field replaced, dropped or added.

Properties:
- the reader's tar stage (``tar_samples`` -> ``episodes``) yields the unaffected episodes exactly as they
  were and never one whose bytes changed (IntegrityError naming shard and episode, or skipped and counted);
  with ``verify_sha256`` off, anything it parses is an Episode, anything else a LeRobotWdsError;
- ``verify``'s shard check returns findings, never raises, and names every episode whose bytes changed;
- ``Manifest.from_json_bytes`` / ``EpisodeMeta.from_json_bytes`` return a well-typed object or raise
  FormatError; a manifest that parses opens as a dataset and plans an epoch, or raises LeRobotWdsError.
Example counts come from the hypothesis profile (tests/conftest.py).
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import tarfile
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import fsspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.core.errors import FormatError, LeRobotWdsError
from lerobot_wds.core.format import MANIFEST_NAME, EpisodeMeta, Manifest
from lerobot_wds.reader.dataset import LeRobotWdsDataset
from lerobot_wds.reader.errors import IntegrityError, ShardFormatError
from lerobot_wds.reader.fetching.fetch import Fetched
from lerobot_wds.reader.fetching.integrity import integrity_failures
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.reader.parsing.episode import parse_episode
from lerobot_wds.reader.parsing.tar_episodes import episodes, tar_samples
from lerobot_wds.reader.planning.reads import Read
from lerobot_wds.reader.planning.topology import Topology
from lerobot_wds.tools.verify.shard import check_shard

SHARD = "shards/shard-000000.tar"
# ustar header fields: name -> (offset, width)
HEADER_FIELDS = {
    "name": (0, 100),
    "mode": (100, 8),
    "size": (124, 12),
    "mtime": (136, 12),
    "typeflag": (156, 1),
    "linkname": (157, 100),
    "magic": (257, 8),
    "prefix": (345, 155),
}


@dataclass(frozen=True)
class Converted:
    root: Path
    manifest: Manifest
    data: bytes  # shard 0
    members: tuple[tuple[str, int, int, int], ...]  # (name, header offset, data offset, size)
    reference: dict[int, Any]  # episode -> (meta, video bytes) parsed from the clean shard

    def __repr__(self) -> str:
        return f"<converted {self.root.name}>"

    def _repr_pretty_(self, p, cycle) -> None:  # hypothesis prints fixtures with this: keep them short
        p.text(repr(self))

    @property
    def info(self):
        return next(s for s in self.manifest.shards if s.path == SHARD)


@pytest.fixture(scope="module")
def converted(small_lerobot_dataset, tmp_path_factory) -> Converted:
    root = tmp_path_factory.mktemp("fuzz_shards") / "root"
    convert(
        ConvertConfig(
            str(small_lerobot_dataset.root), str(root), target_shard_bytes=50_000, order="source", progress=False
        )
    )
    manifest = Manifest.from_json_bytes((root / MANIFEST_NAME).read_bytes())
    data = (root / SHARD).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tuple((m.name, m.offset, m.offset_data, m.size) for m in tar.getmembers())
    c = Converted(root, manifest, data, members, {})
    eps, errors = _read_episodes(c, data, verify=True, policy="raise")
    assert [e.index for e in eps] == [0, 1, 2] and errors.skipped_episodes == 0
    c.reference.update({e.index: (e.meta, e.videos) for e in eps})
    return c


def _read_episodes(c: Converted, data: bytes, *, verify: bool, policy: str):
    """The reader's path from fetched bytes to episodes: integrity check, tar members, episode contract."""
    info = c.info
    read = Read(str(c.root / SHARD), info, None, None, tuple(info.episodes), tuple(info.extents))
    failures = integrity_failures(read, data) if verify else {}
    errors = ErrorCounter(policy)  # type: ignore[arg-type]
    samples = tar_samples([Fetched(read, data, failures)], errors)
    return list(episodes(samples, c.manifest.camera_keys, errors, fps=c.manifest.fps)), errors


# --- tar mutations ------------------------------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return (f"{value:0{width - 1}o}".encode() + b"\0")[-width:] if value < 8 ** (width - 1) else b"7" * width


def _with_checksum(header: bytearray) -> bytes:
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    return bytes(header)


@st.composite
def tar_mutation(draw, c: Converted) -> list[tuple[str, int, bytes]]:
    """Byte patches ``(kind, offset, bytes)`` of the shard; a negative offset means truncate there."""
    data = c.data
    kind = draw(st.sampled_from(["truncate", "flip", "header_flip", "data_flip", "header_field"]))
    if kind == "truncate":
        return [(kind, -draw(st.integers(0, len(data) - 1)) - 1, b"")]
    if kind == "flip":
        return [
            (kind, p, bytes([data[p] ^ 1 << draw(st.integers(0, 7))]))
            for p in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=6))
        ]
    name, header, start, size = draw(st.sampled_from(c.members))
    if kind == "header_flip":
        p = header + draw(st.integers(0, 511))
        return [(kind, p, bytes([data[p] ^ 1 << draw(st.integers(0, 7))]))]
    if kind == "data_flip":
        p = start + draw(st.integers(0, max(0, size - 1)))
        return [(f"{kind} {name}", p, bytes([data[p] ^ 1 << draw(st.integers(0, 7))]))]
    field_name = draw(st.sampled_from(sorted(HEADER_FIELDS)))
    off, width = HEADER_FIELDS[field_name]
    if field_name in ("size", "mode", "mtime"):
        number = draw(
            st.sampled_from([0, 1, size - 1, size + 1, size + 512, 1 << 20, 8**11 - 1]) | st.integers(0, 8**11 - 1)
        )
        value = _octal(number, width) if draw(st.booleans()) else draw(st.binary(min_size=width, max_size=width))
    elif field_name == "typeflag":
        value = draw(
            st.sampled_from([b"0", b"1", b"2", b"3", b"5", b"6", b"7", b"L", b"K", b"x", b"g", b"\0"])
            | st.binary(min_size=1, max_size=1)
        )
    else:
        text = draw(
            st.sampled_from(
                [
                    "",
                    "episode_000000.json",
                    "episode_000001.json",
                    "x",
                    "../x",
                    "a.b.c",
                    "episode_000000",
                    "episode_000000.parquet",
                    "ustar",
                    "ustar  ",
                ]
            )
            | st.text(max_size=width)
        )
        value = (text.encode()[:width]).ljust(width, b"\0")
    buf = bytearray(data[header : header + 512])
    buf[off : off + width] = value
    return [(f"{kind} {field_name} of {name}", header, _with_checksum(buf))]


def apply_tar(data: bytes, mutations: list[list[tuple[str, int, bytes]]]) -> bytes:
    buf = bytearray(data)
    for _, pos, value in (patch for patches in mutations for patch in patches):
        if pos < 0:
            del buf[-pos - 1 :]
        else:
            buf[pos : pos + len(value)] = value
    return bytes(buf)


def _affected(c: Converted, mutated: bytes) -> set[int]:
    """Episodes whose extent's bytes differ (or are cut off) in ``mutated``."""
    ends = {e.episode: (e.offset, e.offset + e.length) for e in c.info.extents}
    return {ep for ep, (lo, hi) in ends.items() if mutated[lo:hi] != c.data[lo:hi]}


def _same_as_reference(c: Converted, ep) -> None:
    meta, videos = c.reference[ep.index]
    assert ep.meta == meta and ep.videos == videos, f"episode {ep.index} differs from the clean shard"


@given(data=st.data())
def test_reader_never_yields_a_changed_episode(converted, data):
    """Integrity on (the default): good episodes come out unchanged; a changed one raises or is skipped."""
    c = converted
    mutated = apply_tar(c.data, data.draw(st.lists(tar_mutation(c), min_size=1, max_size=3)))
    bad = _affected(c, mutated)
    eps, errors = _read_episodes(c, mutated, verify=True, policy="skip")
    assert [e.index for e in eps] == [e for e in (0, 1, 2) if e not in bad]
    assert errors.skipped_episodes == len(bad)
    for ep in eps:
        _same_as_reference(c, ep)
    if bad:
        first = min(bad)
        with pytest.raises(IntegrityError, match=f"shard .*{SHARD}, episode {first} .*sha256"):
            _read_episodes(c, mutated, verify=True, policy="raise")


@given(data=st.data())
def test_reader_without_integrity_parses_or_raises_domain_errors(converted, data):
    """verify_sha256 off: Episodes or a LeRobotWdsError, nothing else."""
    c = converted
    mutated = apply_tar(c.data, data.draw(st.lists(tar_mutation(c), min_size=1, max_size=3)))
    eps, errors = _read_episodes(c, mutated, verify=False, policy="skip")
    # per-episode slices: each episode is parsed or skipped on its own
    assert len(eps) + errors.skipped_episodes == 3
    for ep in eps:
        if ep.index not in _affected(c, mutated):
            _same_as_reference(c, ep)
    try:
        _read_episodes(c, mutated, verify=False, policy="raise")
    except LeRobotWdsError as e:
        assert SHARD in str(e)


@pytest.fixture(scope="module")
def shard_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_verify") / "shard.tar"


@given(data=st.data())
def test_verify_reports_every_changed_episode_and_never_raises(converted, shard_file, data):
    c = converted
    mutated = apply_tar(c.data, data.draw(st.lists(tar_mutation(c), min_size=1, max_size=3)))
    shard_file.write_bytes(mutated)
    res = check_shard(fsspec.filesystem("file"), str(shard_file), c.info, c.manifest, ())
    if mutated == c.data:
        assert res.findings == []
        return
    assert res.findings, "a changed shard passed verify"
    assert {f.shard for f in res.findings} == {SHARD}
    checks = {f.check for f in res.findings}
    if len(mutated) == len(c.data):
        assert "sha256" in checks
        named = {f.episode for f in res.findings if f.check == "extent-sha256"}
        assert named == _affected(c, mutated)
    else:
        assert "size" in checks


# --- JSON ---------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) into a JSON document, the root included."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated_document(draw, doc: Any) -> Any:
    """``doc`` with one node replaced by another JSON value, dropped, or given an unknown sibling key."""
    doc = json.loads(json.dumps(doc))
    path = draw(st.sampled_from(_paths(doc)))
    if not path:
        return draw(json_values)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    old = parent[path[-1]]
    action = draw(st.sampled_from(["replace", "drop", "add", "negate", "stringify", "wrap"]))
    if action == "drop":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(json_values)
    elif action == "negate" and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[path[-1]] = draw(st.sampled_from([-old - 1, 0, 2**63, 2**64, float("nan"), float("inf"), 0.5]))
    elif action == "stringify":
        parent[path[-1]] = str(old)
    elif action == "wrap":
        parent[path[-1]] = [old]
    else:
        parent[path[-1]] = draw(json_values)
    return doc


def assert_well_typed(obj: Any, where: str = "") -> None:
    """Every dataclass field holds its annotated type (bool is no int; ints are non-negative, floats finite)."""
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        _assert_type(getattr(obj, f.name), hints[f.name], f"{where}.{f.name}")


def _assert_type(value: Any, hint: Any, where: str) -> None:
    origin = get_origin(hint)
    if hint is Any:
        return
    if is_dataclass(hint):
        assert isinstance(value, hint), where
        assert_well_typed(value, where)
    elif hint is int:
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 0, (where, value)
    elif hint is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), where
    elif hint is str:
        assert isinstance(value, str), (where, value)
    elif origin is list:
        assert isinstance(value, list), where
        for i, v in enumerate(value):
            _assert_type(v, get_args(hint)[0], f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), where
        for k, v in value.items():
            _assert_type(k, get_args(hint)[0], f"{where} key")
            _assert_type(v, get_args(hint)[1], f"{where}[{k!r}]")
    else:
        raise AssertionError(f"{where}: no rule for {hint}")


class Doc(dict):
    """A JSON document fixture, printed briefly in hypothesis' falsifying examples."""

    def _repr_pretty_(self, p, cycle) -> None:
        p.text("<manifest.json>")


@pytest.fixture(scope="module")
def manifest_doc(converted) -> Doc:
    return Doc(json.loads((converted.root / MANIFEST_NAME).read_bytes()))


@pytest.fixture(scope="module")
def scratch_root(converted, tmp_path_factory) -> Path:
    """A copy of the converted root's meta whose manifest.json each example overwrites."""
    root = tmp_path_factory.mktemp("fuzz_manifest") / "root"
    shutil.copytree(converted.root / "meta", root / "meta")
    return root


def _check_manifest_bytes(raw: bytes, scratch_root: Path) -> None:
    try:
        m = Manifest.from_json_bytes(raw, where="fuzz/manifest.json")
    except FormatError as e:
        assert "fuzz/manifest.json" in str(e)
        return
    assert_well_typed(m, "manifest")
    (scratch_root / MANIFEST_NAME).write_bytes(raw)
    try:
        ds = LeRobotWdsDataset(str(scratch_root), preset="single", shuffle=True)
        for rank in range(2):
            ds.plan(Topology(rank=rank, world_size=2, worker=0, num_workers=2))
    except LeRobotWdsError:
        pass
    except ValueError as e:  # documented: planning needs at least one frame per reader
        assert "fewer than" in str(e), e


@given(data=st.data())
def test_manifest_mutations_parse_or_raise_format_error(manifest_doc, scratch_root, data):
    mutated = data.draw(mutated_document(manifest_doc))
    _check_manifest_bytes(json.dumps(mutated).encode(), scratch_root)


@given(value=json_values, raw=st.binary(max_size=64))
def test_arbitrary_json_and_bytes_as_manifest(scratch_root, value, raw):
    _check_manifest_bytes(json.dumps(value).encode(), scratch_root)
    _check_manifest_bytes(raw, scratch_root)


def _check_episode_json(raw: bytes, converted: Converted) -> None:
    try:
        meta = EpisodeMeta.from_json_bytes(raw, where="fuzz/episode_000001.json")
    except FormatError as e:
        assert "fuzz/episode_000001.json" in str(e)
        return
    assert_well_typed(meta, "meta")
    # the episode contract on the real sample with this JSON: an Episode or a domain error, nothing else
    try:
        parse_episode(_sample(converted, 1, json=raw), converted.manifest.camera_keys, fps=converted.manifest.fps)
    except LeRobotWdsError as e:
        assert SHARD in str(e)


@given(data=st.data())
def test_episode_json_mutations_parse_or_raise_format_error(converted, data):
    doc = json.loads(converted.reference[1][0].to_json_bytes())
    _check_episode_json(json.dumps(data.draw(mutated_document(doc))).encode(), converted)


@given(value=json_values, raw=st.binary(max_size=64))
def test_arbitrary_json_and_bytes_as_episode_json(converted, value, raw):
    _check_episode_json(json.dumps(value).encode(), converted)
    _check_episode_json(raw, converted)


# Regressions: inputs the fuzzers found that escaped as another exception before the fix.


def _sample(c: Converted, episode: int, **replace_members: bytes) -> dict[str, Any]:
    key = f"episode_{episode:06d}"
    with tarfile.open(fileobj=io.BytesIO(c.data)) as tar:
        sample = {
            m.name.split(".", 1)[1]: tar.extractfile(m).read()
            for m in tar.getmembers()
            if m.name.startswith(f"{key}.")
        }
    sample.update(replace_members)
    return {"__key__": key, "__url__": SHARD, **sample}


def test_parquet_with_a_non_utf8_column_name(converted, shard_file):
    """pyarrow reads such a file and raises UnicodeDecodeError only when the names are asked for."""
    c = converted
    good = _sample(c, 1)["parquet"]
    bad = good.replace(b"frame_index", b"frame_inde\x9c")
    with pytest.raises(
        ShardFormatError,
        match=f"shard {SHARD}, sample episode_000001, member "
        "episode_000001.parquet: not a readable parquet file: 'utf-8' codec",
    ):
        parse_episode(_sample(c, 1, parquet=bad), c.manifest.camera_keys, fps=c.manifest.fps)
    shard_file.write_bytes(c.data.replace(good, bad))
    res = check_shard(fsspec.filesystem("file"), str(shard_file), c.info, c.manifest, ())
    parquet = [f for f in res.findings if f.check == "parquet"]
    assert [(f.episode, f.member) for f in parquet] == [(1, "episode_000001.parquet")]
    assert "not a readable parquet file" in parquet[0].message


def test_episode_slice_with_a_trailing_sample_is_one_skip(converted):
    """An episode's bytes holding a second sample after its own: skipped once, never delivered as well."""
    c = converted
    _, header, _, _ = next(m for m in c.members if m[0] == "episode_000001.observation.images.wrist.mp4")
    buf = bytearray(c.data[header : header + 512])
    buf[0:100] = b"episode_000009.mp4".ljust(100, b"\0")
    mutated = c.data[:header] + _with_checksum(buf) + c.data[header + 512 :]
    eps, errors = _read_episodes(c, mutated, verify=False, policy="skip")
    assert [e.index for e in eps] == [0, 2] and errors.skipped_episodes == 1, errors.messages
    assert "sample 1 is 'episode_000009', manifest expects 'no more samples'" in errors.messages[0]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("bytes", "40960", "field shards[0].bytes should be an integer >= 0, found str '40960'"),
        ("episodes", [0, True, 2], "field shards[0].episodes[1] should be an integer >= 0, found bool True"),
        ("sha256", None, "field shards[0].sha256 should be a string, found NoneType None"),
    ],
)
def test_manifest_field_of_the_wrong_type_names_the_field(manifest_doc, field, value, message):
    doc = json.loads(json.dumps(manifest_doc))
    doc["shards"][0][field] = value
    with pytest.raises(FormatError, match=f"^fuzz/manifest.json: {re.escape(message)}"):
        Manifest.from_json_bytes(json.dumps(doc).encode(), where="fuzz/manifest.json")


@pytest.mark.parametrize(
    "doc_patch, message",
    [
        ({"length": "12"}, "field length should be an integer >= 0, found str '12'"),
        ({"fps": 0}, "field fps should be > 0, found 0"),
        ({"fps": float("nan")}, "field fps should be a finite number, found float nan"),
    ],
)
def test_episode_json_field_of_the_wrong_type_names_the_field(converted, doc_patch, message):
    doc = {**json.loads(converted.reference[1][0].to_json_bytes()), **doc_patch}
    with pytest.raises(FormatError, match=f"^ep.json: {re.escape(message)}"):
        EpisodeMeta.from_json_bytes(json.dumps(doc).encode(), where="ep.json")


def test_camera_meta_of_the_wrong_type_names_the_camera(converted):
    doc = json.loads(converted.reference[1][0].to_json_bytes())
    doc["cameras"]["observation.images.front"]["codec"] = ["av1"]
    expected = "field cameras['observation.images.front'].codec should be a string, found list ['av1']"
    with pytest.raises(FormatError, match=re.escape(f"ep.json: {expected}")):
        EpisodeMeta.from_json_bytes(json.dumps(doc).encode(), where="ep.json")
