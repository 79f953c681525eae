"""A small real policy for the training entry point: a conv encoder per camera and an MLP on the state.

It regresses ``action`` from the cameras (every frame of a window stacked as channels) and
``observation.state`` (flattened over its window). Input sizes are taken from the first batch (lazy
layers), so it fits any dataset; images arrive as uint8 and are scaled here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

STATE_KEY = "observation.state"
ACTION_KEY = "action"


class CameraEncoder(nn.Module):
    """[B, (T,) C, H, W] uint8 or float -> [B, width] features."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LazyConv2d(16, kernel_size=5, stride=4),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(32 * 16, width),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 5:  # a window: frames stacked as channels
            x = x.flatten(1, 2)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return self.net(x)


class SmallPolicy(nn.Module):
    """Cameras + state -> action (MSE regression)."""

    def __init__(self, camera_keys: Sequence[str], action_dim: int, width: int = 64) -> None:
        super().__init__()
        self.camera_keys = list(camera_keys)
        self.encoders = nn.ModuleDict({k.replace(".", "_"): CameraEncoder(width) for k in self.camera_keys})
        self.state = nn.Sequential(nn.LazyLinear(width), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(width * (len(self.camera_keys) + 1), 128), nn.ReLU(), nn.Linear(128, action_dim)
        )

    def features(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = [self.encoders[k.replace(".", "_")](batch[k]) for k in self.camera_keys]
        parts.append(self.state(batch[STATE_KEY].flatten(1).float()))
        return torch.cat(parts, dim=1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of a batch (so DDP's forward wraps it)."""
        return self.loss(batch)

    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        target = batch[ACTION_KEY].flatten(1).float()
        pred = self.head(self.features(batch))
        return nn.functional.mse_loss(pred, target)


def make_policy(
    camera_keys: Sequence[str], first_batch: Mapping[str, torch.Tensor], device: torch.device, seed: int
) -> SmallPolicy:
    """Builds the policy and materialises its lazy layers on ``first_batch`` (same weights for a seed)."""
    torch.manual_seed(seed)
    model = SmallPolicy(camera_keys, int(first_batch[ACTION_KEY].flatten(1).shape[1])).to(device)
    with torch.no_grad():
        model.loss(first_batch)
    return model
