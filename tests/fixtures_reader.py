"""Session fixtures of the reader tests: converted roots built directly by ``shard_factory`` (no converter)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lerobot_wds.testing.shards import RootSpec, make_root


@pytest.fixture(scope="session")
def wds_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 episodes (6..15 frames), 2 cameras 64x48 H.264 with B-frames, 2 episodes per shard, no lead-in."""
    root = tmp_path_factory.mktemp("wds_root")
    make_root(root, RootSpec())
    return root


@pytest.fixture(scope="session")
def wds_root_padded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 episodes whose mini-MP4s start 3 frames early and end 2 frames late (lead_in=3, trail=2)."""
    root = tmp_path_factory.mktemp("wds_root_padded")
    make_root(root, RootSpec(lengths=(9, 5, 12, 7), lead_in=3, trail=2, gop=5))
    return root
