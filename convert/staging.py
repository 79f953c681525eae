"""Local staging and background upload of finished shards, bounded to a fixed number of shards on disk.

A shard is written to a staging file, handed to one background upload thread, and its completion record is
written only after the upload finished, so a record always points at a complete shard. ``max_staged`` slots
bound local disk: writing a new shard waits for a slot, and a slot is freed only when its upload is done.
The staging directory records its owner, and creating one sweeps those left behind by killed runs
(:mod:`lerobot_wds.convert.staging_sweep`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from lerobot_wds.convert.manifest_io import ShardRecord, record_path
from lerobot_wds.convert.sink import Sink
from lerobot_wds.convert.staging_sweep import STAGING_PREFIX, sweep_stale, write_owner


class StagingArea:
    """A private directory for staged shards, a slot semaphore and byte accounting (current and peak).

    Creating one removes the staging directories of killed runs in the same base directory (``self.swept``).
    """

    def __init__(self, base_dir: str | None, max_staged: int) -> None:
        base = base_dir or tempfile.gettempdir()
        os.makedirs(base, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=base))
        write_owner(self.dir)
        self.swept = sweep_stale(Path(base), keep=self.dir)
        self._slots = threading.BoundedSemaphore(max_staged)
        self._lock = threading.Lock()
        self._bytes: dict[str, int] = {}
        self.peak_bytes = 0

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.staging"

    def acquire(self) -> None:
        """Blocks until fewer than ``max_staged`` shards are on local disk."""
        self._slots.acquire()

    def release(self) -> None:
        self._slots.release()

    def account(self, name: str, nbytes: int) -> None:
        """Records that staged file ``name`` now holds ``nbytes`` (0 once it left the disk)."""
        with self._lock:
            if nbytes:
                self._bytes[name] = nbytes
            else:
                self._bytes.pop(name, None)
            self.peak_bytes = max(self.peak_bytes, sum(self._bytes.values()))

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Uploader:
    """Uploads staged shards on one background thread, then writes their completion records."""

    def __init__(self, sink: Sink, staging: StagingArea, on_done: Callable[[ShardRecord], None]) -> None:
        self._sink = sink
        self._staging = staging
        self._on_done = on_done
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lerobot-wds-upload")
        self._pending: list[Future[None]] = []

    def submit(self, local: Path, record: ShardRecord, shard_index: int) -> None:
        """Queues an upload; the caller must hold a staging slot, which the upload releases when done."""
        self.raise_failures()
        self._pending.append(self._pool.submit(self._upload, local, record, shard_index))

    def _upload(self, local: Path, record: ShardRecord, shard_index: int) -> None:
        try:
            if record.shard.episodes:
                self._sink.remove_partials(record.shard.path)
                self._sink.put_file(str(local), record.shard.path)
            else:
                local.unlink()  # every episode was skipped: no tar, only the record
            self._staging.account(local.name, 0)
            self._sink.put_bytes(record.to_json_bytes(), record_path(shard_index))
            self._on_done(record)
        finally:
            if local.exists():
                local.unlink()
                self._staging.account(local.name, 0)
            self._staging.release()

    def raise_failures(self) -> None:
        """Re-raises the first failed upload so the run stops early instead of at the end."""
        done = [f for f in self._pending if f.done()]
        self._pending = [f for f in self._pending if not f.done()]
        for f in done:
            f.result()

    def close(self, *, wait_for_uploads: bool = True) -> None:
        """Waits for queued uploads (or drops those not started) and stops the thread; re-raises failures."""
        self._pool.shutdown(wait=True, cancel_futures=not wait_for_uploads)
        pending, self._pending = self._pending, []
        for f in pending:
            if not f.cancelled():
                f.result()
