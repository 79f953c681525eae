"""Builds a whole batch of samples in place: the in-pipeline alternative to DataLoader's collate.

``default_collate`` copies every sample's images once more into a fresh shared-memory tensor; here each
camera's batch tensor is allocated once (in shared memory inside a DataLoader worker, so sending it to the
main process copies nothing) and decoded frames are written straight into it. The result equals
``default_collate([build_sample(...) for ...])`` key for key, dtype for dtype, value for value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from lerobot_wds.reader.decode import FrameSource
from lerobot_wds.reader.episode import Episode
from lerobot_wds.reader.errors import ShardFormatError
from lerobot_wds.reader.sample import SampleSpec, camera_positions, sample_without_images


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Returns an uninitialised tensor, in shared memory when running inside a DataLoader worker."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def build_batch(items: Sequence[tuple[Episode, int]], spec: SampleSpec, source: FrameSource) -> dict[str, Any]:
    """Returns the collated batch of the samples anchored at ``items`` (episode, frame), in that order."""
    parts = [sample_without_images(ep, frame, spec) for ep, frame in items]
    batch: dict[str, Any] = {}
    dtype = torch.uint8 if spec.return_uint8 else torch.float32
    for cam in spec.camera_keys:
        positions = [
            camera_positions(spec, cam, frame, windows)
            for (_, frame), (windows, _) in zip(items, parts, strict=True)
        ]
        ep0 = items[0][0]
        meta = ep0.meta.cameras[cam]
        window = len(positions[0])
        shape = (
            (len(items), 3, meta.height, meta.width)
            if window == 1
            else (len(items), window, 3, meta.height, meta.width)
        )
        out = _empty(shape, dtype)
        view = out.numpy()
        for i, (episode, _) in enumerate(items):
            got = episode.meta.cameras[cam]
            if (got.width, got.height) != (meta.width, meta.height):
                raise ShardFormatError(
                    f"{episode.where}: camera {cam} is {got.width}x{got.height}, other episodes of the batch "
                    f"are {meta.width}x{meta.height}"
                )
            source.gather_into(episode, cam, positions[i], view[i])
        batch[cam] = out
    batch.update(default_collate([rest for _, rest in parts]))
    return batch
