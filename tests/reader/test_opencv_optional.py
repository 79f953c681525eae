"""OpenCV is optional: ``cv2.split`` de-interleaves frames when some OpenCV is installed, numpy otherwise, and
both write the same bytes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lerobot_wds import LeRobotWdsDataset


@pytest.mark.parametrize("shape", [(48, 64), (3, 5), (480, 640)])
def test_to_planes_writes_the_same_bytes_with_and_without_opencv(shape: tuple[int, int]) -> None:
    import cv2

    from lerobot_wds.reader.decoding.frames import CV2_SPLIT, to_planes

    assert CV2_SPLIT is cv2.split  # installed here (the test extra): the fast path is the default
    hwc = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    want = np.ascontiguousarray(hwc.transpose(2, 0, 1))
    for split in (CV2_SPLIT, None):
        chw = np.zeros((3, *shape), dtype=np.uint8)
        to_planes(hwc, chw, split=split)
        assert chw.tobytes() == want.tobytes(), split


def test_a_batch_without_opencv_is_the_batch_with_it(wds_root: Path) -> None:
    code = (
        "import sys; sys.modules['cv2'] = None\n"  # as if no OpenCV were installed: `import cv2` raises
        "import hashlib, torch\n"
        "from lerobot_wds.reader.decoding.frames import CV2_SPLIT\n"
        "from lerobot_wds import LeRobotWdsDataset\n"
        "assert CV2_SPLIT is None\n"
        f"ds = LeRobotWdsDataset({str(wds_root)!r}, batch_size=8, shuffle=False)\n"
        "b = next(iter(torch.utils.data.DataLoader(ds, batch_size=None)))\n"
        "print(hashlib.sha256(b['observation.images.front'].numpy().tobytes()).hexdigest())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ds = LeRobotWdsDataset(str(wds_root), batch_size=8, shuffle=False)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=None)))
    assert proc.stdout.strip() == hashlib.sha256(batch["observation.images.front"].numpy().tobytes()).hexdigest()
