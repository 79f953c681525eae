"""Frames that carry their identity: (episode, frame, camera) drawn as bits that survive lossy encoding.

A frame's top rows are a grid of 8x8 cells, each near-black (bit 0) or near-white (bit 1), aligned to the
codecs' 8x8 transform blocks so a lossy encode cannot flip them; the rest of the frame is a smooth moving
colour pattern so the encoder sees realistic content. 32 bits: episode (12), frame (12), camera (3) and a
5-bit XOR-fold check, so a garbage or misplaced frame raises instead of decoding to a plausible identity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CELL = 8
EPISODE_BITS = 12
FRAME_BITS = 12
CAMERA_BITS = 3
CHECK_BITS = 5
PAYLOAD_BITS = EPISODE_BITS + FRAME_BITS + CAMERA_BITS
TOTAL_BITS = PAYLOAD_BITS + CHECK_BITS
LOW, HIGH = 32, 224  # well inside limited-range YUV so neither end clips


class IdentityError(ValueError):
    """A frame does not carry a readable identity (wrong size, unreadable bits or a failed check)."""


def _grid_rows(width: int) -> int:
    cols = width // CELL
    return -(-TOTAL_BITS // cols)


def check_frame_size(width: int, height: int) -> None:
    """Raises IdentityError unless a ``width`` x ``height`` frame can hold the identity grid."""
    if width < 4 * CELL or width % 2 or height % 2:
        raise IdentityError(f"frame {width}x{height}: width must be >= {4 * CELL} and both dims even")
    if height < (_grid_rows(width) + 1) * CELL:
        raise IdentityError(
            f"frame {width}x{height}: height must be >= {(_grid_rows(width) + 1) * CELL} for the identity grid"
        )


def _check(payload: int) -> int:
    # XOR-fold: every single-bit error in the payload changes the check.
    c = 0
    for shift in range(0, PAYLOAD_BITS, CHECK_BITS):
        c ^= (payload >> shift) & ((1 << CHECK_BITS) - 1)
    return c


def _bits(episode: int, frame: int, camera: int) -> list[int]:
    if not (0 <= episode < 1 << EPISODE_BITS and 0 <= frame < 1 << FRAME_BITS and 0 <= camera < 1 << CAMERA_BITS):
        raise IdentityError(f"identity out of range: episode {episode}, frame {frame}, camera {camera}")
    payload = episode | frame << EPISODE_BITS | camera << (EPISODE_BITS + FRAME_BITS)
    word = payload | _check(payload) << PAYLOAD_BITS
    return [(word >> i) & 1 for i in range(TOTAL_BITS)]


def make_frame(episode: int, frame: int, camera: int, width: int, height: int) -> np.ndarray:
    """Returns an HWC uint8 RGB frame whose identity ``read_identity_full`` recovers after lossy coding."""
    check_frame_size(width, height)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = float(frame) + 100.0 * episode
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 128 + 90 * np.sin(2 * np.pi * (xx / width + t / 23.0))
    img[..., 1] = 128 + 90 * np.cos(2 * np.pi * (yy / height + t / 17.0))
    img[..., 2] = 128 + 60 * np.sin(2 * np.pi * ((xx + yy) / (width + height) + camera / 5.0))
    cols = width // CELL
    for i, bit in enumerate(_bits(episode, frame, camera)):
        r, c = divmod(i, cols)
        img[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL, :] = HIGH if bit else LOW
    # Unused cells of the last grid row stay mid-grey, clearly neither bit value.
    used = TOTAL_BITS
    last_row = _grid_rows(width) - 1
    for c in range(used - last_row * cols, cols):
        img[last_row * CELL : (last_row + 1) * CELL, c * CELL : (c + 1) * CELL, :] = 128
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _to_hwc(frame: Any) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim != 3:
        raise IdentityError(f"frame must be HWC or CHW with 3 channels, got shape {arr.shape}")
    if arr.shape[0] == 3 and arr.shape[2] != 3:
        arr = np.transpose(arr, (1, 2, 0))
    if arr.shape[2] != 3:
        raise IdentityError(f"frame must be HWC or CHW with 3 channels, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and float(arr.max(initial=0.0)) <= 1.0:
            arr = arr * 255.0  # lerobot's float frames in [0, 1]
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return arr


def read_identity_full(frame: Any) -> tuple[int, int, int]:
    """Returns (episode, frame, camera) from a decoded frame (HWC or CHW, uint8 or float in [0, 1]).

    Raises:
        IdentityError: when a cell is neither clearly dark nor clearly bright or the check fails.
    """
    img = _to_hwc(frame)
    height, width = img.shape[:2]
    check_frame_size(width, height)
    cols = width // CELL
    word = 0
    for i in range(TOTAL_BITS):
        r, c = divmod(i, cols)
        # The cell's inner 4x4 avoids edge ringing from neighbouring cells.
        inner = img[r * CELL + 2 : (r + 1) * CELL - 2, c * CELL + 2 : (c + 1) * CELL - 2].astype(np.float32)
        level = float(inner.mean())
        if abs(level - 128.0) < 40.0:
            raise IdentityError(f"identity cell {i} at row {r} col {c} is ambiguous (mean level {level:.1f})")
        word |= int(level > 128.0) << i
    payload = word & ((1 << PAYLOAD_BITS) - 1)
    if word >> PAYLOAD_BITS != _check(payload):
        raise IdentityError(f"identity check failed (word {word:#010x}): frame is not an identity frame")
    episode = payload & ((1 << EPISODE_BITS) - 1)
    frame_index = (payload >> EPISODE_BITS) & ((1 << FRAME_BITS) - 1)
    camera = payload >> (EPISODE_BITS + FRAME_BITS)
    return episode, frame_index, camera


def read_identity(frame: Any) -> tuple[int, int]:
    """Returns (episode_index, frame_index) from a decoded frame; see ``read_identity_full``."""
    episode, frame_index, _ = read_identity_full(frame)
    return episode, frame_index
