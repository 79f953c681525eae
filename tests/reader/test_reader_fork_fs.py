"""No fsspec session or event loop crosses a fork: every DataLoader worker reads through its own filesystem.

Over the loopback HTTP server: the parent opens the root (its HTTP filesystem then holds an aiohttp session on
the parent's event-loop thread); forked workers read the epoch, collect garbage, and report what they used.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.reader.fetching.filesystems import open_fs, opened_here
from lerobot_wds.testing.shards import read_identity


class _Probe(IterableDataset):
    """Yields the dataset's batches, then one report of the worker's filesystem and the parent's session."""

    def __init__(self, ds: LeRobotWdsDataset, url: str, parent_session: Any, parent_loop: Any) -> None:
        self.ds, self.url = ds, url
        self.parent_session, self.parent_loop = parent_session, parent_loop  # not the parent's filesystem itself

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.ds
        gc.collect()  # an inherited filesystem freed here would run its close_session finalizer
        fs, _ = open_fs(self.url, self.ds.stream_config.fs_options(self.url))
        yield {
            "report": True,
            "pid": os.getpid(),
            "worker": get_worker_info().id,
            "opened_here": opened_here(fs),
            "own_loop": fs.loop is not self.parent_loop and fs.loop.is_running(),
            "parent_session_closed": self.parent_session.closed,
        }


def test_workers_open_their_own_filesystem_and_never_close_the_parents(
    wds_root: Path, http_dir_server: Callable[..., Any]
) -> None:
    server = http_dir_server(wds_root)
    url = f"{server.url}/manifest.json"
    ds = LeRobotWdsDataset(server.url, batch_size=4, shuffle=False)
    parent_fs, _ = open_fs(url, ds.stream_config.fs_options(url))
    assert opened_here(parent_fs)
    session = parent_fs._session
    assert session is not None and not session.closed  # the parent read the manifest through it
    probe = _Probe(ds, url, session, parent_fs.loop)
    del parent_fs  # the workers inherit this frame: only the reader itself may keep the filesystem alive
    loader = DataLoader(probe, batch_size=None, num_workers=2, multiprocessing_context="fork")
    reports, frames = [], set()
    for item in loader:
        if "report" in item:
            reports.append(item)
            continue
        cams, eps, idxs = item[ds.camera_keys[0]], item["episode_index"], item["frame_index"]
        for image, ep, idx in zip(cams, eps, idxs, strict=True):
            assert read_identity(image)[:2] == (int(ep), int(idx))
            frames.add((int(ep), int(idx)))
    assert len(frames) == ds.num_frames  # the epoch read every frame over HTTP
    assert sorted(r["worker"] for r in reports) == [0, 1]
    assert len({r["pid"] for r in reports}) == 2 and os.getpid() not in {r["pid"] for r in reports}
    for r in reports:
        assert r["opened_here"], r  # the worker's reads went through a filesystem it opened itself
        assert r["own_loop"], r  # on its own running event loop, not the parent's
        assert not r["parent_session_closed"], r  # no inherited session was finalized in the worker
    assert not session.closed  # and the parent's session is still the parent's
