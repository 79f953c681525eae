"""Builds a whole batch of samples in place: the in-pipeline alternative to DataLoader's collate.

``default_collate`` copies every sample's images once more into a fresh shared-memory tensor; here each
camera's batch tensor is allocated once (in shared memory inside a DataLoader worker, so sending it to the
main process copies nothing) and decoded frames are written straight into it. The result equals
``default_collate([build_sample(...) for ...])`` key for key, dtype for dtype, value for value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from lerobot_wds.reader.assembling import batch_slots
from lerobot_wds.reader.assembling.batch_slots import SlotBatch, SlotRing, pack
from lerobot_wds.reader.assembling.sample import SampleSpec, camera_positions, sample_without_images
from lerobot_wds.reader.decoding.frames import FramePool
from lerobot_wds.reader.errors import ShardFormatError
from lerobot_wds.reader.scheduling.pool import Anchor


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Returns an uninitialised tensor, in shared memory when running inside a DataLoader worker."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape))
    storage = batch_slots.shared_storage(numel * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


def _camera_shapes(
    items: Sequence[Anchor],
    spec: SampleSpec,
    positions: dict[str, list[list[int]]],
) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Batch tensor shape and dtype of every camera; all episodes of the batch must agree on its size."""
    dtype = torch.uint8 if spec.return_uint8 else torch.float32
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    for cam in spec.camera_keys:
        meta = items[0].episode.meta.cameras[cam]
        for episode in (a.episode for a in items):
            got = episode.meta.cameras[cam]
            if (got.width, got.height) != (meta.width, meta.height):
                raise ShardFormatError(
                    f"{episode.where}: camera {cam} is {got.width}x{got.height}, other episodes of the batch "
                    f"are {meta.width}x{meta.height}"
                )
        window = len(positions[cam][0])
        frame = (3, meta.height, meta.width)
        shapes[cam] = ((len(items), *frame) if window == 1 else (len(items), window, *frame), dtype)
    return shapes


def transform_in_place(images: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor], cam: str) -> None:
    """Applies ``transform`` to every sample of a camera's batch tensor, as lerobot does per sample.

    Raises:
        ValueError: the transform changed a sample's shape or dtype (batches are built in place).
    """
    for i in range(images.shape[0]):
        out = transform(images[i])
        if out.shape != images[i].shape or out.dtype != images.dtype:
            raise ValueError(
                f"image_transforms turned camera {cam}'s {tuple(images[i].shape)} {images.dtype} image into "
                f"{tuple(out.shape)} {out.dtype}; with batch_size= on the dataset a transform must keep shape and "
                "dtype (resize before conversion, or batch in the DataLoader)"
            )
        if out.data_ptr() != images[i].data_ptr():
            images[i].copy_(out)


def build_batch(
    items: Sequence[Anchor],
    spec: SampleSpec,
    source: FramePool,
    ring: SlotRing | None = None,
    done: Callable[[Anchor], None] | None = None,
) -> dict[str, Any]:
    """Returns the collated batch of the samples anchored at ``items``, in that order.

    With ``ring`` (inside a DataLoader worker) every tensor of the batch lives in one reused shared-memory
    slot (see :mod:`batch_slots`); without, camera tensors are fresh (shared memory inside a worker). Rows are
    filled in ``items`` order and ``done(anchor)`` is called after each row, so frames can be dropped at
    their last use while the rest of the batch decodes (the scheduler planned exactly that order).
    """
    parts = [sample_without_images(a.episode, a.frame, spec) for a in items]
    positions = {
        cam: [camera_positions(spec, cam, a.frame, windows) for a, (windows, _) in zip(items, parts, strict=True)]
        for cam in spec.camera_keys
    }
    shapes = _camera_shapes(items, spec, positions)
    rows = [r for _, r in parts]
    if ring is not None:
        # tensor columns are stacked straight into the slot (default_collate would first make a shared copy)
        stacked = [k for k in rows[0] if all(isinstance(r[k], torch.Tensor) for r in rows)]
        columns = {k: ((len(rows), *rows[0][k].shape), rows[0][k].dtype) for k in stacked}
        slot, layout = pack({**shapes, **columns}, ring)
        for k in stacked:
            torch.stack([r[k] for r in rows], out=layout[k][0])
        others = default_collate([{k: v for k, v in r.items() if k not in columns} for r in rows])
        rest = {k: layout[k][0] if k in columns else others[k] for k in rows[0]}
        cams = {cam: layout[cam][0] for cam in spec.camera_keys}
    else:
        rest = default_collate(rows)
        cams = {cam: _empty(*shapes[cam]) for cam in spec.camera_keys}
    views = {cam: out.numpy() for cam, out in cams.items()}
    # through the slot's file (see batch_slots): each frame is de-interleaved into one reused buffer and written
    # with pwrite, so the worker never maps the images; transforms work on the tensors, so they need the mapping
    images = sum(int(np.prod(shapes[cam][0])) * shapes[cam][1].itemsize for cam in spec.camera_keys)
    through = (
        ring is not None
        and slot.writes_through_file
        and spec.image_transforms is None
        and images > ring.mapped_batch_bytes
    )
    for i, a in enumerate(items):
        for cam, view in views.items():
            needs = a.needs.get(cam, ())
            if not through:
                source.gather_into(a.visit, cam, positions[cam][i], view[i], needs)
                continue
            # frame by frame: the buffer stays in cache between the de-interleave and the kernel's copy
            frame = ring.row(view.shape[-3:], view.dtype)  # type: ignore[union-attr]
            at = layout[cam][1] + i * view[i].nbytes
            for p in positions[cam][i]:
                source.gather_into(a.visit, cam, [p], frame, needs)
                slot.write(at, frame)
                at += frame.nbytes
        if done is not None:
            done(a)
    if spec.image_transforms is not None:
        for cam, out in cams.items():
            transform_in_place(out, spec.image_transforms, cam)
    batch = {**cams, **rest}
    return SlotBatch(batch, slot, layout) if ring is not None else batch
