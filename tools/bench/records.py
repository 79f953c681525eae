"""Benchmark records on disk: one JSON file per run plus a CSV of all runs in the directory, and reading back.

The runner writes; the report and the plot only read. The CSV is rebuilt from all JSON records after every
write so its columns always cover every record (nested dicts are flattened as ``a.b``).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lerobot_wds.core.redact import redact_url

if TYPE_CHECKING:
    from lerobot_wds.tools.bench.scenarios import BenchConfig

RECORD_VERSION = 1
RECORD_GLOB = "bench-*.json"
CSV_NAME = "records.csv"


def record_name(record: Mapping[str, Any]) -> str:
    """A file name unique per run: loader, mode, label, workers, batch size, rank and creation time."""
    stamp = f"{record['created_unix']:.6f}".replace(".", "")
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(record["source_label"]))
    return (
        f"bench-{record['loader']}-{record['mode']}-{label}-w{record['num_workers']}-b{record['batch_size']}"
        f"-r{record['rank']}-{stamp}.json"
    )


def record_header(config: BenchConfig) -> dict[str, Any]:
    """The keys every record of a run of ``config`` starts with, measured or not (roots without credentials).

    Records are shared (pasted, committed): ``source`` and ``meta_root`` pass through :func:`redact_url`.
    """
    roots = {"source": redact_url(config.source), "meta_root": config.meta_root and redact_url(config.meta_root)}
    return {
        "record_version": RECORD_VERSION,
        "created_unix": time.time(),
        "config": asdict(config) | roots,
        "loader": config.loader,
        "mode": config.mode,
        "source_label": config.source_label,
        "batch_size": config.batch_size,
        "num_workers": config.num_workers,
        "return_uint8": config.return_uint8,
    }


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens nested dicts into ``a.b`` keys (lists stay JSON strings)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def load_records(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Reads every record JSON in ``directory``, oldest first; raises naming a file that is not a record."""
    records = []
    for path in sorted(Path(directory).glob(RECORD_GLOB)):
        try:
            record = json.loads(path.read_text())
        except ValueError as e:
            raise ValueError(f"{path}: not a JSON benchmark record: {e}") from e
        if not isinstance(record, dict) or record.get("record_version") != RECORD_VERSION:
            raise ValueError(f"{path}: not a benchmark record of version 1")
        records.append(record)
    return sorted(records, key=lambda r: r["created_unix"])


def write_csv(directory: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> Path:
    """Writes ``records.csv`` (atomically) with the union of all flattened columns."""
    rows = [flatten(r) for r in records]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    path = Path(directory) / CSV_NAME
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def write_record(directory: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Writes one record JSON (atomically) and rebuilds the directory's CSV; returns the JSON path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / record_name(record)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    write_csv(out, load_records(out))
    return path
