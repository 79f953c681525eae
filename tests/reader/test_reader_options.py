"""The reader's options are checked at the boundary: a wrong type or value is an ``OptionError`` naming the
keyword, the value and what is accepted, never a silent coercion or a raw TypeError from a stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lerobot_wds import LeRobotWdsDataset
from lerobot_wds.core.errors import LeRobotWdsError
from lerobot_wds.reader.errors import OptionError, UnknownEpisodeError
from lerobot_wds.testing.shards import RootSpec, make_root

SPEC = RootSpec(lengths=(5, 6, 4, 7), episodes_per_shard=2, cameras=("observation.images.c",))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("options_root")
    make_root(path, SPEC)
    return str(path)


BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"batch_size": 2.5}, r"^batch_size=2\.5 \(float\); expected an integer >= 1 or None$"),
    ({"batch_size": "16"}, r"^batch_size='16' \(str\); expected an integer >= 1 or None$"),
    ({"batch_size": True}, r"^batch_size=True \(bool\); expected an integer >= 1 or None$"),
    ({"episodes": "12"}, r"^episodes='12' \(str\); expected a list of episode indices, e\.g\. \[0, 3, 7\]$"),
    ({"episodes": "0-3"}, r"^episodes='0-3' \(str\); expected a list of episode indices"),
    ({"episodes": [1.5]}, r"^episodes=\[1\.5\]: 1\.5 is not an episode index; expected integers$"),
    ({"episodes": []}, r"^episodes=\[\] selects no episode; give at least one index, or None for every episode$"),
    (
        {"delta_timestamps": {"observation.state": 0.1}},
        r"^delta_timestamps\['observation\.state'\]=0\.1; expected a list of seconds, e\.g\. \[-0\.1, 0\.0\]",
    ),
    ({"delta_timestamps": [0.1]}, r"^delta_timestamps=\[0\.1\] \(list\); expected a dict of feature key"),
    ({"seed": "x"}, r"^seed='x' \(str\); expected an integer >= 0$"),
    ({"shuffle": "yes"}, r"^shuffle='yes' \(str\); expected True or False$"),
    ({"active_episodes": 0}, r"^active_episodes=0 \(int\); expected an integer >= 1 or None$"),
    ({"mix_batch": 0}, r"^mix_batch=0 \(int\); expected an integer >= 1 or None$"),
    ({"tolerance_s": "0.1"}, r"^tolerance_s='0\.1' \(str\); expected a number >= 0\.0$"),
    ({"uneven": "drop"}, r"^uneven='drop'; expected one of \['pad', 'trim'\]$"),
]


@pytest.mark.parametrize(("options", "message"), BAD_OPTIONS, ids=lambda v: repr(v)[:40])
def test_wrong_option_names_keyword_value_and_accepted(root: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        LeRobotWdsDataset(root, **options)


def test_set_epoch_and_samples_per_rank_check_their_arguments(root: str) -> None:
    ds = LeRobotWdsDataset(root)
    with pytest.raises(OptionError, match=r"^set_epoch\(epoch\)='a' \(str\); expected an integer >= 0$"):
        ds.set_epoch("a")  # type: ignore[arg-type]
    with pytest.raises(
        OptionError, match=r"^samples_per_rank\(num_workers\)=-1 \(int\); expected an integer >= 0$"
    ):
        ds.samples_per_rank(-1)
    with pytest.raises(OptionError, match=r"^samples_per_rank\(world_size\)=0 \(int\)"):
        ds.samples_per_rank(0, world_size=0)
    assert ds.samples_per_rank(2) == sum(SPEC.lengths)  # 22 frames over 2 workers: 11 each, no padding


def test_an_unknown_episode_names_itself_and_the_valid_range(root: str) -> None:
    with pytest.raises(UnknownEpisodeError) as info:
        LeRobotWdsDataset(root, episodes=[1, 99999])
    assert str(info.value) == "episodes: episode 99999 is not in this root; it holds 4 episodes, indices 0..3"
    assert isinstance(info.value, LeRobotWdsError) and not type(info.value).__name__ == "ValueError"


def test_good_options_are_kept_exactly(root: str) -> None:
    import numpy as np

    ds = LeRobotWdsDataset(root, episodes=np.array([3, 1]), batch_size=np.int64(4), shuffle=False)
    assert ds.episodes == [3, 1] and ds.batch_size == 4 and type(ds.batch_size) is int
    assert ds.num_frames == SPEC.lengths[1] + SPEC.lengths[3]
