"""Pytest fixtures serving real LeRobot v3.0 datasets built by ``lerobot_wds.testing.synth`` (built once).

- ``lerobot_variant``: parametrised over ``STANDARD_VARIANTS`` (AV1, H.264 with B-frames, HEVC, moov at the
  end, several files per camera, continuous long-GOP encode); a test using it runs once per variant.
- ``small_lerobot_dataset``: AV1, 2 cameras, 4 episodes (5, 12, 3, 8 frames) for converter/reader tests.
- ``make_lerobot_dataset``: builds a custom ``LeRobotSpec`` in a fresh temporary directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lerobot_wds.testing.synth import VARIANTS, LeRobotFixture, LeRobotSpec, make_dataset, make_variant

STANDARD_VARIANTS: list[str] = list(VARIANTS)


@pytest.fixture(scope="session")
def _lerobot_fixture_cache(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], LeRobotFixture]:
    built: dict[str, LeRobotFixture] = {}

    def get(name: str) -> LeRobotFixture:
        if name not in built:
            built[name] = make_variant(name, tmp_path_factory.mktemp(f"lerobot_{name}") / "dataset")
        return built[name]

    return get


@pytest.fixture(scope="session", params=STANDARD_VARIANTS)
def lerobot_variant(request: pytest.FixtureRequest, _lerobot_fixture_cache) -> LeRobotFixture:
    """One standard LeRobot v3.0 fixture dataset per parameter (read-only: do not modify its files)."""
    return _lerobot_fixture_cache(request.param)


@pytest.fixture(scope="session")
def small_lerobot_dataset(_lerobot_fixture_cache) -> LeRobotFixture:
    """AV1, 2 cameras (64x64, 96x72), 4 episodes of 5, 12, 3, 8 frames at 10 fps (read-only)."""
    return _lerobot_fixture_cache("small")


@pytest.fixture
def make_lerobot_dataset(tmp_path: Path) -> Callable[..., LeRobotFixture]:
    """Returns ``build(spec=None, **spec_fields)`` writing a custom dataset under this test's tmp_path."""
    counter = iter(range(1_000_000))

    def build(spec: LeRobotSpec | None = None, **fields) -> LeRobotFixture:
        spec = spec if spec is not None else LeRobotSpec(**fields)
        return make_dataset(spec, tmp_path / f"lerobot_{next(counter)}")

    return build
