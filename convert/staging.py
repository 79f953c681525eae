"""Local staging and background upload of finished shards, bounded to a fixed number of shards on disk.

A shard is written to a staging file, handed to one background upload thread, and its completion record is
written only after the upload finished, so a record always points at a complete shard. ``max_staged`` slots
bound local disk: writing a new shard waits for a slot, and a slot is freed only when its upload is done.
The staging directory records its owner, and creating one first sweeps those left behind by killed runs
(:mod:`lerobot_wds.convert.staging_sweep`), so their disk is free before this run needs it. A write that fails
(a full disk, a quota) raises :class:`StagingError`: one line naming the file, the bytes written and expected
and the space left, never a bare ``OSError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from lerobot_wds.convert.errors import StagingError
from lerobot_wds.convert.manifest_io import ShardRecord, record_path
from lerobot_wds.convert.metrics import StageTimes
from lerobot_wds.convert.sink import Sink
from lerobot_wds.convert.staging_sweep import staging_prefix, sweep_stale, write_owner

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class StagingArea:
    """A private directory for staged shards, a slot semaphore and byte accounting (current and peak).

    Creating one removes the staging directories of killed runs in the same base directory (``self.swept``).
    """

    def __init__(self, base_dir: str | None, max_staged: int) -> None:
        base = base_dir or tempfile.gettempdir()
        self.max_staged = max_staged
        try:
            os.makedirs(base, exist_ok=True)
            self.swept = sweep_stale(Path(base))  # first: a disk filled by killed runs has room again
            # the name carries the owner until write_owner() records it (a kill in between leaves it sweepable)
            self.dir = Path(tempfile.mkdtemp(prefix=staging_prefix(), dir=base))
        except OSError as e:
            raise StagingError(f"staging dir {base}: cannot create a private dir in it ({_reason(e)})") from e
        try:
            write_owner(self.dir)
        except OSError as e:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise StagingError(f"staging dir {self.dir}: cannot write its owner record ({_reason(e)})") from e
        self._slots = threading.BoundedSemaphore(max_staged)
        self._lock = threading.Lock()
        self._bytes: dict[str, int] = {}
        self.peak_bytes = 0

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.staging"

    def open(self, path: Path, *, what: str, expect_bytes: int) -> StagedFile:
        """Opens staged file ``path`` (from :meth:`path`) for writing ``what``, about ``expect_bytes`` long."""
        return StagedFile(self, path, what=what, expect_bytes=expect_bytes)

    def write_error(self, path: Path, what: str, written: int, expect_bytes: int, exc: OSError) -> StagingError:
        """The one-line error for a failed write of staged file ``path``."""
        if exc.errno not in _DISK_FULL:
            return StagingError(f"staging file {path}: cannot write {what} after {written} bytes ({_reason(exc)})")
        try:
            free = f"{shutil.disk_usage(self.dir).free} bytes free"
        except OSError:
            free = "free space unknown"
        return StagingError(
            f"staging file {path}: {_reason(exc)} after {written} bytes of {what} (the shard needs about "
            f"{expect_bytes} bytes, and up to {self.max_staged} shards are staged at once; {free} in "
            f"{self.dir.parent}): free space there or pass --staging-dir on a larger disk"
        )

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


class StagedFile:
    """A staged file open for writing (``write``/``tell``, a context manager); a failed write raises StagingError.

    Only this file's own operations are translated, so an error raised by the code writing into it passes
    unchanged. After a failure, closing drops the unwritten buffer instead of failing a second time.
    """

    def __init__(self, area: StagingArea, path: Path, *, what: str, expect_bytes: int) -> None:
        self.path = path
        self._area = area
        self._what = what
        self._expect = expect_bytes
        self._failed = False
        self._f: BinaryIO | None = None
        self._f = self._guard(lambda: open(path, "wb"))  # noqa: SIM115 - closed by close()/__exit__

    def _guard(self, op: Callable[[], Any]) -> Any:
        try:
            return op()
        except OSError as e:
            self._failed = True
            raise self._area.write_error(self.path, self._what, self._on_disk(), self._expect, e) from e

    def _on_disk(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0

    def _file(self) -> BinaryIO:
        if self._f is None:
            raise ValueError(f"{self.path}: staged file is closed")
        return self._f

    def write(self, data: bytes) -> int:
        f = self._file()
        return self._guard(lambda: f.write(data))

    def tell(self) -> int:
        return self._file().tell()

    def close(self) -> None:
        if self._f is None:
            return
        if self._failed:
            with contextlib.suppress(OSError):
                self._f.close()
        else:
            self._guard(self._f.close)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self._failed = True  # already failing: closing must not raise a second, unrelated error
        self.close()


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower() if exc.errno is not None else str(exc)


class Uploader:
    """Uploads staged shards on one background thread, then writes their completion records."""

    def __init__(
        self,
        sink: Sink,
        staging: StagingArea,
        on_done: Callable[[ShardRecord], None],
        times: StageTimes | None = None,
    ) -> None:
        self._sink = sink
        self._times = times or StageTimes()
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
            with self._times.timed("upload"):
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
