"""The destination: a local directory or any fsspec URL, written so no partial file ever has a final name.

Local roots write ``.<name>.partial-<pid>`` next to the target and rename it (atomic on POSIX); object stores
(S3, GCS, HF buckets...) publish an object only when its upload completes, so uploads go straight to the
final key. Uploads retry transient errors (connection resets, timeouts, 5xx) with exponential backoff;
permanent ones (missing bucket, denied, bad path) fail at once naming the URL and the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import fsspec

from lerobot_wds.convert.errors import SinkError
from lerobot_wds.core.retry import RetryPolicy, with_retries
from lerobot_wds.core.urls import join_url

T = TypeVar("T")


__all__ = ["FsspecSink", "LocalSink", "Sink", "SinkError", "open_sink"]

_HASH_CHUNK = 4 * 1024 * 1024


class Sink(Protocol):
    """What the pipeline needs from a destination; paths are relative to the root, with ``/``."""

    url: str

    def put_file(self, local_path: str, rel: str) -> None: ...
    def put_bytes(self, data: bytes, rel: str) -> None: ...
    def size(self, rel: str) -> int | None: ...
    def read_bytes(self, rel: str) -> bytes | None: ...
    def sha256(self, rel: str) -> str: ...
    def glob(self, rel_pattern: str) -> list[str]: ...
    def remove_partials(self, rel: str) -> None: ...
    def sweep_partials(self) -> None: ...
    def remove_tree(self, rel: str) -> None: ...


class LocalSink:
    """A local directory root: temp name + rename; a staged file on the same device is renamed, not copied."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def _partial(self, final: Path) -> Path:
        # pid only makes concurrent writers (array parts copying meta/) use different temp names
        return final.with_name(f".{final.name}.partial-{os.getpid()}")

    def put_file(self, local_path: str, rel: str) -> None:
        """Moves (same device) or copies ``local_path`` to ``rel`` atomically; the local file is consumed."""
        final = self._path(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        if os.stat(local_path).st_dev == os.stat(final.parent).st_dev:
            os.replace(local_path, final)
            return
        tmp = self._partial(final)
        try:
            shutil.copyfile(local_path, tmp)
            os.replace(tmp, final)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise SinkError(f"{final}: cannot write ({type(e).__name__}: {e})") from e
        os.unlink(local_path)

    def put_bytes(self, data: bytes, rel: str) -> None:
        final = self._path(rel)
        tmp = self._partial(final)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, final)
        except BaseException as e:  # a failed write or a signal (SIGTERM) leaves no temp file behind
            tmp.unlink(missing_ok=True)
            if isinstance(e, OSError):
                raise SinkError(f"{final}: cannot write ({type(e).__name__}: {e})") from e
            raise

    def size(self, rel: str) -> int | None:
        try:
            return self._path(rel).stat().st_size
        except FileNotFoundError:
            return None

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self._path(rel).read_bytes()
        except FileNotFoundError:
            return None

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        with open(self._path(rel), "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def glob(self, rel_pattern: str) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.glob(rel_pattern))

    def remove_partials(self, rel: str) -> None:
        """Deletes temp files a killed earlier run left for ``rel`` (they never carry the final name)."""
        final = self._path(rel)
        for p in final.parent.glob(f".{final.name}.partial-*"):
            p.unlink(missing_ok=True)

    def sweep_partials(self) -> None:
        """Deletes every temp file under the root; only safe once no writer is left (``finalize``).

        A run killed between writing a temp file and renaming it (meta/, records) leaves one behind; the
        re-run writes the file under another temp name, so nothing else would ever remove it.
        """
        for p in self.root.rglob(".*.partial-*"):
            if p.is_file():
                p.unlink(missing_ok=True)

    def remove_tree(self, rel: str) -> None:
        """Deletes the folder ``rel`` and everything under it (nothing if it is not there)."""
        shutil.rmtree(self._path(rel), ignore_errors=True)


class FsspecSink:
    """Any fsspec filesystem whose uploads become visible atomically on completion (object stores)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, url: str, *, attempts: int, backoff_s: float):
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url.rstrip("/")
        self._attempts = attempts
        self._backoff_s = backoff_s
        self.retries = 0  # transient errors retried so far (reported in the summary)

    def _full(self, rel: str) -> str:
        return join_url(self.root, rel)

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        def count(_attempt: int, _exc: BaseException) -> None:
            self.retries += 1

        policy = RetryPolicy(attempts=self._attempts, backoff_s=self._backoff_s)
        return with_retries(fn, what=what, policy=policy, on_retry=count, error=SinkError)

    def put_file(self, local_path: str, rel: str) -> None:
        """Uploads ``local_path`` to ``rel`` (retrying transient errors), then deletes the local file."""
        self._retry(lambda: self.fs.put_file(local_path, self._full(rel)), f"upload {self.url}/{rel}")
        os.unlink(local_path)

    def put_bytes(self, data: bytes, rel: str) -> None:
        self._retry(lambda: self.fs.pipe_file(self._full(rel), data), f"upload {self.url}/{rel}")

    def size(self, rel: str) -> int | None:
        def info() -> int | None:
            try:
                return int(self.fs.info(self._full(rel))["size"])
            except FileNotFoundError:
                return None

        self.fs.invalidate_cache(self._full(rel))
        return self._retry(info, f"stat {self.url}/{rel}")

    def read_bytes(self, rel: str) -> bytes | None:
        def cat() -> bytes | None:
            try:
                return self.fs.cat_file(self._full(rel))
            except FileNotFoundError:
                return None

        return self._retry(cat, f"read {self.url}/{rel}")

    def sha256(self, rel: str) -> str:
        def digest() -> str:
            h = hashlib.sha256()
            with self.fs.open(self._full(rel), "rb", block_size=_HASH_CHUNK) as f:
                while chunk := f.read(_HASH_CHUNK):
                    h.update(chunk)
            return h.hexdigest()

        return self._retry(digest, f"hash {self.url}/{rel}")

    def glob(self, rel_pattern: str) -> list[str]:
        self.fs.invalidate_cache()
        found = self._retry(lambda: self.fs.glob(self._full(rel_pattern)), f"list {self.url}/{rel_pattern}")
        prefix = self.fs._strip_protocol(self.root) + "/"
        return sorted(
            p[len(prefix) :] for p in (self.fs._strip_protocol(x) for x in found) if p.startswith(prefix)
        )

    def remove_partials(self, rel: str) -> None:
        """Nothing to do: object stores keep no partial object under any name."""

    def sweep_partials(self) -> None:
        """Nothing to do: object stores keep no partial object under any name."""

    def remove_tree(self, rel: str) -> None:
        """Deletes every object under the prefix ``rel`` (nothing if there is none)."""

        def rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(self._full(rel), recursive=True)

        self._retry(rm, f"remove {self.url}/{rel}")


def open_sink(
    url: str, options: dict[str, Any] | None = None, *, attempts: int = 6, backoff_s: float = 0.5
) -> Sink:
    """Returns the sink for a local path / ``file://`` URL or any other fsspec URL."""
    fs, root = fsspec.core.url_to_fs(url, **(options or {}))
    if "file" in _protocols(fs) or "local" in _protocols(fs):
        return LocalSink(root)
    return FsspecSink(fs, root, url, attempts=attempts, backoff_s=backoff_s)


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)
