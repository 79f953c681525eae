"""Reused shared-memory slots carrying whole batches from a DataLoader worker to the main process.

A DataLoader worker normally puts every tensor of every batch into a fresh shared-memory file: the file is
created, mapped and passed by file descriptor, and the kernel allocates and zeroes each page as the worker
first writes it. For batches of decoded images that costs about a third of a worker's CPU next to decoding
(measured with ``tools/bench``: 1.2M page faults and 4 s of system time for 12,000 frames). Here a worker
keeps a few *slots* (one shared storage each, holding every tensor of one batch) and writes a batch into a
slot the main process has finished with, whose pages are already resident.

Protocol. A slot starts with a ``HEADER``-byte header whose first byte the main process sets to ``FREE``
when the last tensor it rebuilt from the slot is garbage-collected (a ``weakref.finalize`` on the array all
of them view). The worker reuses a slot only when (1) none of its own views of the slot is alive (a weak
reference to the per-use array) and (2) the slot was never pickled for this use, or the main process has
set ``FREE``. A batch is sent as slot + layout once; pickling it again (or pickling a tensor of it on its
own) copies, so no tensor anywhere can see a slot being rewritten. When every slot is busy a worker makes a
fresh one (kept while ``max_slots`` allows): it never waits and never overwrites.

Writing through the file. A slot the worker wrote through its own mapping stays resident in the worker's
page tables: 3 slots of a 480x640 x 3-camera ``sarm`` batch (575 MB each: one being built, one queued, one
in the training loop's hands) put 1.7 GB of shared memory in every worker's RSS, on top of its decoding. The
images of a batch larger than ``DecodeConfig.mapped_batch_bytes`` (64 MiB) are therefore written with
``pwrite`` into the slot's shared-memory file (:meth:`Slot.write`), frame by frame from a reused buffer: the
kernel copies into the file's resident pages, no page faults, and the worker maps only the header and the
small columns. The main process maps the slot as before. Writing through the file is slower than through a
resident mapping, but faster than unmapping after each send and faulting back in (figures in
``docs/design.md``). Smaller batches (single frames: 44 MB at 480x640 x 3 cameras, batch 16) are written
through the mapping, which saves that copy for a few slots of RSS. Where the sharing
strategy gives no file descriptor (``file_system``), images are written through the mapping.

In the main process batches are plain ``dict`` of ordinary CPU tensors (``torch.from_numpy`` over the
mapping): ``pin_memory``, ``.to(device)`` and further pickling work as usual.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np
import torch

HEADER = 64  # bytes before the payload; byte 0 is the release flag; payloads are 64-byte aligned
FREE, HELD = 1, 0

# torch's private constructor of a storage born in shared memory (per torch's sharing strategy, as
# ``share_memory_`` would make it). Its public equivalent, ``UntypedStorage(n).share_memory_()``, allocates
# ordinary memory first and copies it over: twice the page faults and, briefly, twice the memory. So the
# private one is used while torch has it, the public one otherwise (tests set this to None to run that path).
_new_shared = getattr(torch.UntypedStorage, "_new_shared", None)


def shared_storage(nbytes: int) -> torch.UntypedStorage:
    """An uninitialised CPU storage of ``nbytes`` in shared memory: sent to another process, it is not copied."""
    if _new_shared is not None:
        return _new_shared(nbytes)
    return torch.UntypedStorage(nbytes).share_memory_()


def _aligned(n: int) -> int:
    return (n + 63) // 64 * 64


class Slot:
    """One shared storage: header + payload capacity, and the state of its current use."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.storage = shared_storage(HEADER + capacity)
        self.array = torch.empty(0, dtype=torch.uint8).set_(self.storage).numpy()
        self.array[0] = FREE
        self.sent = False
        self._user: weakref.ref[np.ndarray] | None = None
        self._fd: int | None = _file_descriptor(self.storage)

    @property
    def writes_through_file(self) -> bool:
        """Whether :meth:`write` goes through the shared-memory file (else through the mapping)."""
        return self._fd is not None

    def write(self, offset: int, data: np.ndarray) -> None:
        """Copies the C-contiguous ``data`` to payload byte ``offset``, through the file when it has one (the
        worker's page tables then never hold the payload), else through the mapping."""
        raw = memoryview(data).cast("B")  # type: ignore[arg-type]  # ndarray is a buffer
        at = HEADER + offset
        if at + len(raw) > HEADER + self.capacity:
            raise ValueError(
                f"write of {len(raw)} bytes at payload offset {offset} overflows a {self.capacity}-byte slot"
            )
        if self._fd is None:
            self.array[at : at + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
            return
        while raw:
            n = os.pwrite(self._fd, raw, at)
            raw, at = raw[n:], at + n

    def reusable(self) -> bool:
        if self._user is not None and self._user() is not None:
            return False  # the worker itself still holds a view of the previous use
        return not self.sent or self.array[0] == FREE

    def take(self, nbytes: int) -> np.ndarray:
        """Starts a use: returns a fresh uint8 array over the first ``nbytes`` of the payload."""
        self.array[0] = HELD
        self.sent = False
        # np.frombuffer over a memoryview: views derived from ``user`` keep ``user`` as their base (numpy does
        # not collapse a base chain past a non-array), so a weak reference to it tells when they are all gone.
        user = np.frombuffer(memoryview(self.array[HEADER : HEADER + nbytes]), dtype=np.uint8)  # type: ignore[arg-type]
        self._user = weakref.ref(user)
        return user


def _file_descriptor(storage: torch.UntypedStorage) -> int | None:
    """The shared-memory file of a storage under torch's ``file_descriptor`` strategy, else None (asking a
    ``file_system`` storage for a descriptor crashes the process, so the strategy is checked first)."""
    if torch.multiprocessing.get_sharing_strategy() != "file_descriptor":
        return None
    try:
        fd, _ = storage._share_fd_cpu_()
    except (RuntimeError, AttributeError, TypeError, ValueError):
        return None
    return int(fd) if isinstance(fd, int) and fd >= 0 else None


class SlotRing:
    """A worker's slots: ``take(nbytes)`` returns a payload array in a reusable slot (or a new one), and
    ``row(shape, dtype)`` the reused buffer a frame is assembled in before :meth:`Slot.write`."""

    def __init__(self, max_slots: int = 8, mapped_batch_bytes: int = 0) -> None:
        if max_slots < 0:
            raise ValueError(f"max_slots must be >= 0, got {max_slots}")
        self.max_slots = max_slots
        self.mapped_batch_bytes = mapped_batch_bytes  # images up to this size go through the mapping
        self.slots: list[Slot] = []
        self.reused = self.created = 0
        self._rows: dict[tuple[tuple[int, ...], np.dtype], np.ndarray] = {}

    def row(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A reused uninitialised array of ``shape`` and ``dtype`` (one per shape and dtype: a camera's frame)."""
        key = (tuple(shape), np.dtype(dtype))
        buf = self._rows.get(key)
        if buf is None:
            buf = self._rows[key] = np.empty(shape, dtype)
        return buf

    def release(self) -> None:
        """Drops the kept slots at the end of an iteration: a batch still on its way to the main process keeps
        its own slot alive until it is sent, and a slot's memory is freed once no process maps it.

        Without this, the slots of a worker's last iteration stay referenced (by the dataset's ``stats()``
        state) until the worker ends with ``os._exit``, which frees nothing: under torch's ``file_system``
        sharing strategy their ``/dev/shm`` files then outlived every worker of every epoch (measured: +5 files
        per epoch with 2 workers, tests/reader/test_soak.py)."""
        self.slots.clear()
        self._rows.clear()

    def take(self, nbytes: int) -> tuple[Slot, np.ndarray]:
        fits = [s for s in self.slots if s.capacity >= nbytes and s.reusable()]
        if fits:
            slot = min(fits, key=lambda s: s.capacity)
            self.reused += 1
        else:
            slot = Slot(nbytes)
            self.created += 1
            if len(self.slots) < self.max_slots:
                self.slots.append(slot)
        return slot, slot.take(nbytes)


class SlotBatch(dict):
    """A batch dict whose tensors (``layout``: key -> tensor, payload offset) live in ``slot``.

    Pickled the first time, it sends the slot storage and the layout instead of the tensors; entries that
    are no longer the slot's tensors (replaced after building) and non-tensor values travel as usual.
    """

    def __init__(self, data: dict[str, Any], slot: Slot, layout: dict[str, tuple[torch.Tensor, int]]) -> None:
        super().__init__(data)
        self.slot = slot
        self.layout = layout

    def __copy__(self) -> SlotBatch:
        return SlotBatch(dict(self), self.slot, self.layout)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.slot.sent:  # a second send would let the first receiver free the slot under the second
            return (dict, (dict(self),))
        self.slot.sent = True
        views, rest = {}, {}
        for key, value in self.items():
            entry = self.layout.get(key)
            if entry is not None and entry[0] is value:
                views[key] = (entry[1], tuple(value.shape), value.dtype)
            else:
                rest[key] = value
        return (_rebuild, (self.slot.storage, views, rest, list(self)))


def _release(array: np.ndarray) -> None:
    array[0] = FREE


def _rebuild(
    storage: torch.UntypedStorage,
    views: dict[str, tuple[int, tuple[int, ...], torch.dtype]],
    rest: dict[str, Any],
    order: list[str],
) -> dict[str, Any]:
    """Main-process side: ordinary tensors over the received slot; the slot is freed when they all die."""
    array = torch.empty(0, dtype=torch.uint8).set_(storage).numpy()
    user = np.frombuffer(memoryview(array[HEADER:]), dtype=np.uint8)  # type: ignore[arg-type]  # ndarray is a buffer
    weakref.finalize(user, _release, array[:HEADER])
    out = dict(rest)
    for key, (offset, shape, dtype) in views.items():
        n = int(np.prod(shape)) * dtype.itemsize
        out[key] = torch.from_numpy(user[offset : offset + n]).view(dtype).view(shape)
    return {key: out[key] for key in order}


def pack(
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]],
    ring: SlotRing,
) -> tuple[Slot, dict[str, tuple[torch.Tensor, int]]]:
    """Takes one slot holding uninitialised tensors of ``shapes``; returns it and the layout (tensor, offset)."""
    sizes = {k: int(np.prod(s)) * d.itemsize for k, (s, d) in shapes.items()}
    offsets, total = {}, 0
    for key, n in sizes.items():
        offsets[key], total = total, total + _aligned(n)
    slot, user = ring.take(max(total, 1))
    layout = {
        key: (
            torch.from_numpy(user[offsets[key] : offsets[key] + n]).view(shapes[key][1]).view(shapes[key][0]),
            offsets[key],
        )
        for key, n in sizes.items()
    }
    return slot, layout
