"""lerobot's dataset metadata of a converted root (``LeRobotWdsDataset.meta``): read in place or fetched once.

The converter copies the source's ``meta/`` (info.json, stats.json, tasks.parquet, episodes/) into the root. A
local root is read in place; a remote root's ``meta/`` is fetched once into a cache directory keyed by its URL
and the manifest's shard digests (as lerobot caches hub metadata), written under a temporary name and renamed
when complete. With lerobot installed the result is lerobot's own ``LeRobotDatasetMetadata`` of that
directory; without, a :class:`DatasetMeta` with the attributes training code reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lerobot_wds.core.errors import FormatError
from lerobot_wds.core.format import META_DIR, Manifest
from lerobot_wds.core.redact import redact_url
from lerobot_wds.core.retry import read_with_retries
from lerobot_wds.core.urls import join_url, listing_target
from lerobot_wds.reader.fetching.filesystems import open_fs

if TYPE_CHECKING:
    from lerobot_wds.reader.fetching.fetch import StreamConfig

CACHE_ENV = "LEROBOT_WDS_META_CACHE"  # overrides the default cache directory of remote roots' meta/


def default_cache_dir() -> Path:
    """``$LEROBOT_WDS_META_CACHE``, else ``~/.cache/lerobot_wds/meta``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "lerobot_wds" / "meta"


def stats_to_numpy(stats: dict[str, Any]) -> dict[str, Any]:
    """Nested stats with every leaf an ``np.atleast_1d`` array: lerobot's ``cast_stats_to_numpy``."""
    return {k: stats_to_numpy(v) if isinstance(v, dict) else np.atleast_1d(np.array(v)) for k, v in stats.items()}


@dataclass(frozen=True)
class DatasetMeta:
    """The attributes of lerobot's ``LeRobotDatasetMetadata`` that training reads, without lerobot.

    Attributes:
        root: the local directory holding ``meta/``.
        info: ``meta/info.json`` (feature shapes as tuples, as lerobot loads them).
        stats: ``meta/stats.json`` with numpy leaves (None when the file is absent, as lerobot).
        tasks: ``{task string: task_index}`` (lerobot: a DataFrame indexed by task with a task_index column).
    """

    root: Path
    info: dict[str, Any]
    stats: dict[str, dict[str, np.ndarray]] | None
    tasks: dict[str, int]

    @classmethod
    def read(cls, root: Path) -> DatasetMeta:
        """Reads ``root/meta``; raises FormatError naming a missing or unreadable file."""
        from lerobot_wds.core.tasks import read_tasks

        meta = root / META_DIR
        info_path, stats_path, tasks_path = meta / "info.json", meta / "stats.json", meta / "tasks.parquet"
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError) as e:
            raise FormatError(f"{info_path}: cannot read lerobot's info.json: {e}") from e
        for ft in info.get("features", {}).values():
            if isinstance(ft.get("shape"), list):
                ft["shape"] = tuple(ft["shape"])
        stats = stats_to_numpy(json.loads(stats_path.read_text())) if stats_path.exists() else None
        tasks = {task: index for index, task in read_tasks(tasks_path.read_bytes(), str(tasks_path)).items()}
        return cls(root=root, info=info, stats=stats, tasks=tasks)

    @property
    def features(self) -> dict[str, dict]:
        return self.info["features"]

    @property
    def fps(self) -> int:
        return self.info["fps"]

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def video_keys(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft["dtype"] == "video"]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, ft in self.features.items() if ft["dtype"] in ("video", "image")]

    @property
    def total_episodes(self) -> int:
        return self.info["total_episodes"]

    @property
    def total_frames(self) -> int:
        return self.info["total_frames"]


def cache_key(root: str, manifest: Manifest) -> str:
    """A cache directory name for ``root``: changes when the URL (less any credential: a renewed signature
    keeps the cache) or any shard's digest does."""
    h = hashlib.sha256(redact_url(root).encode())
    for shard in manifest.shards:
        h.update(shard.sha256.encode())
    return h.hexdigest()[:32]


def local_meta_root(root: str, manifest: Manifest, stream: StreamConfig, cache_dir: Path | None = None) -> Path:
    """A local directory whose ``meta/`` is the root's: the root itself, or the cache it was fetched into.

    Raises:
        FormatError: the root has no ``meta/info.json`` (not a converted root, or its meta was not copied).
    """
    url = join_url(root, META_DIR)
    listed, options = listing_target(url, stream.fs_options(url))  # a signed root's query goes on every request
    fs, path = open_fs(listed, options)
    if "file" in fs.protocol or "local" in fs.protocol:
        if not (Path(path) / "info.json").is_file():
            raise FormatError(f"{url}/info.json: not found; the converter copies the source's meta/ there")
        return Path(path).parent
    target = (cache_dir or default_cache_dir()) / cache_key(root, manifest)
    if (target / META_DIR / "info.json").is_file():
        return target
    policy = stream.retry_policy()
    files = read_with_retries(lambda: fs.find(path), what=f"list {url}", policy=policy)
    if not any(f.endswith("/info.json") for f in files):
        raise FormatError(f"{url}/info.json: not found; the converter copies the source's meta/ there")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=target.parent))
    try:
        for f in files:
            rel = f[len(path.rstrip("/")) + 1 :]
            out = tmp / META_DIR / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(read_with_retries(partial(fs.cat_file, f), what=f"{url}/{rel}", policy=policy))
        try:
            tmp.rename(target)
        except OSError:  # another process completed the same cache first: keep theirs
            if not (target / META_DIR / "info.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_meta(local_root: Path, repo_id: str) -> Any:
    """lerobot's ``LeRobotDatasetMetadata`` of ``local_root`` with lerobot installed, else :class:`DatasetMeta`."""
    try:
        from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    except ImportError:
        return DatasetMeta.read(local_root)
    return LeRobotDatasetMetadata(repo_id, root=local_root)
