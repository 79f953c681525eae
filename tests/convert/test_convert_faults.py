"""Converter faults on real processes: SIGTERM, kill -9 at random points, a full staging (or destination) disk.

Every run is the ``lerobot-wds convert`` CLI in a subprocess. After each fault nothing partial is visible as
complete (no ``manifest.json`` unless every output file is there, and every file under its final name holds
exactly the bytes of a clean run's file), and a re-run of the same command reproduces every file of a clean
run byte for byte: meta/, shards/, manifest.json and the _convert/ bookkeeping, with no temp file left.
S3 endpoint and server restarts are in ``test_convert_s3_faults``.

Covered elsewhere, not repeated here: kill -9 after the first shard / after a record with the staging sweep,
and kill -9 of the converter while an S3 PUT is half sent (``test_convert_cli``); 503s on PUTs retried and an
upload giving up (``test_convert_remote``); staging dirs of dead owners swept (``test_staging_sweep``).

The random-kill test tries 20 kill -9 points in the default suite and 100 (marked ``soak``) under ``make soak``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from convert_helpers import all_bytes
from fault_helpers import (
    assert_nothing_partial_visible,
    convert_args,
    one_line,
    reference,
    run,
    shards_done,
    start,
    wait_until,
)

from lerobot_wds.convert.interrupt import Interrupted, signals_deferred, stop_on_signals
from lerobot_wds.testing.http_server import LoopbackHTTPServer, ServeConfig

# -- SIGTERM, SIGINT --------------------------------------------------------------------------------------------


def test_a_signal_is_raised_as_interrupted_but_waits_for_deferred_cleanup():
    before = signal.getsignal(signal.SIGTERM)
    steps = []
    with stop_on_signals():
        with pytest.raises(Interrupted) as stopped:
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("cleanup went on")  # held back until the block ends
        with pytest.raises(ValueError), signals_deferred():  # an error already unwinding is not replaced
            os.kill(os.getpid(), signal.SIGINT)
            raise ValueError("the first error")
        with pytest.raises(Interrupted) as ctrl_c:
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("not reached")
    assert signal.getsignal(signal.SIGTERM) is before and steps == ["cleanup went on"]
    assert stopped.value.exit_code == 143 and ctrl_c.value.exit_code == 130
    resume = "; rerun the same command to resume"
    assert str(stopped.value) == "interrupted by SIGTERM, before any shard was written" + resume
    assert str(Interrupted(signal.SIGINT, 2, 4)) == "interrupted by SIGINT, 2 of 4 shards done" + resume


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_after_first_shard_stops_cleanly_and_rerun_is_identical(
    small_lerobot_dataset, http_dir_server, tmp_path, sig
):
    """SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C) to the process: exit 128 + signal, one line."""
    # a slow source (60 ms per request) keeps the converter busy for ~1 s after the first shard lands
    server = http_dir_server(small_lerobot_dataset.root, latency_ms=60)
    expected = reference(server.url, tmp_path / "ref")
    out, stage = tmp_path / "out", tmp_path / "stage"
    args = convert_args(server.url, out, stage)
    proc = start(args)
    wait_until(lambda: (out / "shards/shard-000000.tar").exists(), "the first shard", proc)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    if code == 0:
        pytest.fail(f"the run finished before {sig.name} reached it; nothing was interrupted")
    files = all_bytes(out)
    n = shards_done(files)
    assert code == 128 + sig and 1 <= n < 4
    assert one_line(proc.stderr.read()) == (
        f"lerobot-wds convert: interrupted by {sig.name}, {n} of 4 shards done; rerun the same command to resume"
    )
    assert list(stage.iterdir()) == []  # the staging dir is removed
    assert "manifest.json" not in files and not [r for r in files if Path(r).name.startswith(".")]
    assert_nothing_partial_visible(files, expected)
    rerun = run(args)
    assert f"resumed {n} shards" in rerun.stderr
    assert all_bytes(out) == expected and list(stage.iterdir()) == []


# -- kill -9 at random points ---------------------------------------------------------------------------------


@pytest.fixture
def slow_source(small_lerobot_dataset) -> Iterator[LoopbackHTTPServer]:
    """The small dataset over HTTP with 20 ms per request: a run takes ~2 s, spread over all its phases."""
    with LoopbackHTTPServer(small_lerobot_dataset.root, ServeConfig(latency_ms=20)) as server:
        yield server


@pytest.mark.parametrize("kills", [20, pytest.param(100, marks=pytest.mark.soak)])
def test_kill9_at_random_points_then_rerun_is_identical(slow_source, tmp_path, kills):
    stage = tmp_path / "stage"  # shared: every re-run sweeps the staging dir its killed predecessor left
    clean = tmp_path / "clean"
    t0 = time.monotonic()
    proc = start(convert_args(slow_source.url, clean, stage))
    wait_until(clean.exists, "the clean run's first output", proc)
    first_s = time.monotonic() - t0  # the interpreter's start and the source's meta reads come before
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    clean_s = time.monotonic() - t0
    expected = all_bytes(clean)
    rng = random.Random(20240611 + kills)
    # one point in each of `kills` equal slices of the clean run's time from its first output to its end,
    # counted from the killed run's own first output (the interpreter's start and the source's meta reads
    # before it vary by a few hundred ms)
    work_s = clean_s - first_s
    points = [(i + rng.random()) * work_s / kills for i in range(kills)]
    landed = []
    for i, delay in enumerate(points):
        out = tmp_path / f"run{i}"
        args = convert_args(slow_source.url, out, stage)
        proc = start(args)
        wait_until(out.exists, "the first output", proc)
        time.sleep(delay)  # where to kill, not a timing assertion
        proc.send_signal(signal.SIGKILL)
        code = proc.wait()
        files = all_bytes(out)
        assert code in (0, -signal.SIGKILL), proc.stderr.read()
        assert ("manifest.json" in files) >= (code == 0)
        assert_nothing_partial_visible(files, expected)
        tars = sum(r.startswith("shards/") and r.endswith(".tar") for r in files)
        landed.append(f"{delay:.2f} s ({'finished' if code == 0 else f'{len(files)} files, {tars} shards'})")
        rerun = run(args)
        assert all_bytes(out) == expected, f"kill {i} at {delay:.2f} s: the re-run differs from a clean run"
        left = {str(p.relative_to(stage)) for p in stage.rglob("*")}
        assert not left, f"kill {i} at {delay:.2f} s: {sorted(left)} left in staging; re-run said {rerun.stderr}"
    print(
        f"clean run {clean_s:.2f} s (first output at {first_s:.2f} s); kill -9 at {', '.join(landed)} after "
        "the first output; every re-run byte-identical"
    )


def test_temp_files_of_killed_runs_are_removed_by_the_run_that_finishes(small_lerobot_dataset, tmp_path):
    """kill -9 between a temp file's write and its rename leaves the temp file (meta/ and records: the re-run
    writes them under its own temp name); finalize, which runs when no writer is left, removes them (and a
    finished single-part run removes its _convert/ bookkeeping)."""
    src, out = str(small_lerobot_dataset.root), tmp_path / "out"
    expected = reference(src, out)
    for rel in (
        "meta/.info.json.partial-4242",
        "_convert/shards/.shard-000002.json.partial-4242",
        "shards/.shard-000003.tar.partial-4242",
        "_convert/.part-00000-of-00001.json.partial-4242",
    ):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)  # a finished run left no _convert/
        (out / rel).write_bytes(b"half")
    assert "resumed 4 shards" in run(convert_args(src, out, tmp_path / "stage")).stderr
    assert all_bytes(out) == expected


# -- staging disk full ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mounts a tmpfs of ``size`` at ``path`` for the block (skips the test when that is not allowed)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the full-disk test needs root")
    path.mkdir(parents=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {path}: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_full_staging_disk_fails_with_one_line_and_rerun_is_identical(make_lerobot_dataset, tmp_path):
    # shards of 20 kB, 20 kB, 60 kB, 20 kB; a 40 kB tmpfs holds the owner record and one small shard
    ds = make_lerobot_dataset(episode_lengths=(4, 4, 100, 4))
    src = str(ds.root)
    expected = reference(src, tmp_path / "ref")
    assert [len(expected[f"shards/shard-00000{i}.tar"]) for i in range(4)] == [20480, 20480, 61440, 20480]
    out = tmp_path / "out"
    with tmpfs(tmp_path / "small", "40k") as small:
        proc = run(convert_args(src, out, small, "--max-staged-shards", "1"), code=1)
        line = one_line(proc.stderr)
        assert re.fullmatch(
            rf"lerobot-wds convert: error: staging file {small}/lerobot-wds-staging-[\w-]+/shard-000002\.staging: "
            r"no space left on device after \d+ bytes of shards/shard-000002\.tar \(the shard needs about \d+ "
            rf"bytes, and up to 1 shards are staged at once; \d+ bytes free in {small}\): free space there or "
            r"pass --staging-dir on a larger disk",
            line,
        ), line
        assert list(small.iterdir()) == []  # the staging dir is removed
    files = all_bytes(out)
    assert shards_done(files) == 2 and "manifest.json" not in files
    assert_nothing_partial_visible(files, expected)
    rerun = run(convert_args(src, out, tmp_path / "big"))
    assert "resumed 2 shards" in rerun.stderr
    assert all_bytes(out) == expected


def test_full_destination_disk_fails_with_one_line_and_leaves_no_temp_file(small_lerobot_dataset, tmp_path):
    with tmpfs(tmp_path / "dest", "16k") as dest:  # smaller than the source's meta/episodes parquet (54 kB)
        proc = run(convert_args(str(small_lerobot_dataset.root), dest / "out", tmp_path / "stage"), code=1)
        line = one_line(proc.stderr)
        assert line == (
            f"lerobot-wds convert: error: {dest}/out/meta/episodes/chunk-000/file-000.parquet: cannot "
            "write (OSError: [Errno 28] No space left on device)"
        )
        assert [p.name for p in dest.rglob("*") if p.is_file()] == []  # the temp file is removed
