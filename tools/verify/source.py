"""``verify --source``: a converted episode's rows and provenance compared with the LeRobot v3 source.

Rows must be exactly the source's rows of that episode, schema (with its metadata) included; the episode
JSON must repeat the source's length, index range and tasks, and each camera must name the source file and
time span it was cut from.
"""

from __future__ import annotations

import pyarrow as pa

from lerobot_wds.convert.source import LeRobotSource, SourceError
from lerobot_wds.core.format import EpisodeMeta, episode_key
from lerobot_wds.tools.report import Finding


class SourceRowsCheck:
    """A sample hook comparing rows and episode metadata with the source dataset."""

    def __init__(self, source: LeRobotSource) -> None:
        self.source = source

    def __call__(self, shard: str, meta: EpisodeMeta, rows: pa.Table, members: dict[str, bytes]) -> list[Finding]:
        ep = meta.episode_index
        member = f"{episode_key(ep)}.parquet"
        json_member = f"{episode_key(ep)}.json"
        rec = self.source.episodes.get(ep)
        if rec is None:
            return [Finding("source", f"episode {ep} is not in {self.source.url}/meta/episodes", shard, ep)]
        out: list[Finding] = []
        try:
            expected = self.source.episode_rows(rec)
        except SourceError as e:
            return [Finding("source", f"cannot read the source rows: {e}", shard, ep, member=member)]
        out.extend(Finding("rows", m, shard, ep, member=member) for m in compare_tables(rows, expected))
        got = (meta.length, meta.dataset_from_index, meta.dataset_to_index, tuple(meta.tasks))
        want = (rec.length, rec.dataset_from_index, rec.dataset_to_index, tuple(rec.tasks))
        if got != want:
            out.append(
                Finding(
                    "source-meta",
                    f"(length, from_index, to_index, tasks) {got}, source has {want}",
                    shard,
                    ep,
                    member=json_member,
                )
            )
        for cam, cm in meta.cameras.items():
            ref = rec.videos.get(cam)
            if ref is None:
                out.append(Finding("source-meta", "camera not in the source", shard, ep, cam, json_member))
                continue
            got_v = (cm.source_file, cm.source_from_timestamp, cm.source_to_timestamp)
            want_v = (ref.path, ref.from_timestamp, ref.to_timestamp)
            if got_v != want_v:
                out.append(
                    Finding(
                        "source-meta",
                        f"(source_file, from, to) {got_v}, source has {want_v}",
                        shard,
                        ep,
                        cam,
                        json_member,
                    )
                )
        return out


def compare_tables(got: pa.Table, expected: pa.Table) -> list[str]:
    """Returns what differs between two tables (schema with metadata, row count, first differing cell)."""
    if not got.schema.equals(expected.schema, check_metadata=True):
        if got.schema.equals(expected.schema):
            return [f"schema metadata differs: {got.schema.metadata!r} vs source {expected.schema.metadata!r}"]
        return [f"schema differs: {_fields(got.schema)} vs source {_fields(expected.schema)}"]
    if got.num_rows != expected.num_rows:
        return [f"{got.num_rows} rows, source has {expected.num_rows}"]
    out = []
    for name in got.column_names:
        a, b = got.column(name), expected.column(name)
        if a.equals(b):
            continue
        va, vb = a.to_pylist(), b.to_pylist()
        if va == vb or all(_same(x, y) for x, y in zip(va, vb, strict=True)):
            continue  # equal up to NaN == NaN, which Arrow's equals does not grant
        row = next(i for i, (x, y) in enumerate(zip(va, vb, strict=True)) if not _same(x, y))
        out.append(f"column {name!r} row {row}: {va[row]!r}, source has {vb[row]!r}")
    return out


def _same(x: object, y: object) -> bool:
    if isinstance(x, float) and isinstance(y, float) and x != x and y != y:
        return True
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    return x == y


def _fields(schema: pa.Schema) -> list[str]:
    return [f"{f.name}: {f.type}" for f in schema]
