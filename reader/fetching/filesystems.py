"""The reader's fsspec filesystems, one set per process: no filesystem session or event loop crosses a fork.

fsspec's async filesystems (HTTP, S3) hold a client session bound to an event-loop thread of the process that
opened them. A DataLoader worker forked from the parent inherits those objects but not the thread; fsspec
clears its instance cache in the child, and when the garbage collector frees an inherited instance there, its
finalizer (``close_session``) waits about a second on the parent's loop before giving up, in the middle of
the worker's reads. So:

- :func:`open_fs` keeps the filesystems it opens per process id (made with ``skip_instance_cache``): a worker
  opens its own, with its own session on its own loop;
- what a process inherited through fork (ours, and instances in fsspec's own caches, opened elsewhere) stays
  referenced in the child, so it is never finalized there (a worker ends with ``os._exit``, which runs no
  finalizer either).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import fsspec
from fsspec.registry import registry as fs_classes
from fsspec.utils import tokenize

_OPENED: dict[tuple[int, str], fsspec.AbstractFileSystem] = {}  # (pid, token) -> filesystem, every pid's kept
_INHERITED: list[Any] = []  # fsspec-cached instances of the parent at fork, held in the child
_lock = threading.Lock()


def _fs_key(url: str, options: dict[str, Any]) -> str:
    """What identifies a filesystem: its protocol and options (those a URL carries, e.g. a bucket's, too)."""
    protocol, _ = fsspec.core.split_protocol(url)
    protocol = protocol or "file"
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError):  # a chained URL ("simplecache::s3://..."): one filesystem per URL
        return tokenize(url, options)
    return tokenize(protocol, cls._get_kwargs_from_urls(url), options)


def open_fs(url: str, options: dict[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    """This process's filesystem for ``url`` with ``options`` (opened on first use) and the path inside it."""
    key = (os.getpid(), _fs_key(url, options))
    with _lock:
        fs = _OPENED.get(key)
        if fs is None:
            fs, path = fsspec.core.url_to_fs(url, **{**options, "skip_instance_cache": True})
            _OPENED[key] = fs
            return fs, path
    return fs, fs._strip_protocol(url)


def opened_here(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` was opened by :func:`open_fs` in this process (not inherited through fork)."""
    pid = os.getpid()
    return any(f is fs and p == pid for (p, _), f in list(_OPENED.items()))


def _hold_fsspec_instances() -> None:
    """Before a fork: references to every instance in fsspec's caches, which the child then holds."""
    held: list[Any] = []
    for cls in list(fs_classes.values()):
        held.extend(getattr(cls, "_cache", {}).values())
    _INHERITED[:] = held


def _after_fork_in_parent() -> None:
    _INHERITED.clear()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_hold_fsspec_instances, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )
