"""PSNR of decoded frames against the source's, for conversions whose frames were encoded again (``--reencode``).

Such a conversion cannot equal its source bit for bit; ``verify --decode`` then measures how far each frame is
from the source frame at the same time (peak signal-to-noise ratio over every uint8 value) and reports the
smallest and the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# What a re-encode must keep: lerobot's default AV1 encode (crf 30) of its own frames stays above this.
DEFAULT_MIN_PSNR_DB = 40.0


def psnr_db(frame: torch.Tensor, reference: torch.Tensor) -> float:
    """Returns the PSNR of ``frame`` against ``reference`` (uint8 tensors of one shape) in dB; inf if equal."""
    if frame.shape != reference.shape:
        raise ValueError(f"frame shape {tuple(frame.shape)} differs from the reference's {tuple(reference.shape)}")
    mse = float(((frame.double() - reference.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@dataclass
class PsnrTally:
    """Smallest and mean PSNR over the frames compared so far (mean of per-frame dB values; inf counts as 100)."""

    frames: int = 0
    min_db: float = math.inf
    sum_db: float = 0.0

    def add(self, db: float) -> None:
        self.frames += 1
        self.min_db = min(self.min_db, db)
        self.sum_db += min(db, 100.0)

    @property
    def mean_db(self) -> float:
        return self.sum_db / self.frames if self.frames else math.nan
