"""The Swish CNN energy network: image -> scalar score (high = real); energy E(x) = -score."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genframe import Model


class SwishEnergyNet(Model):
    """Stride-2 convs with Swish (SiLU), then Dense(hidden) Swish, Dense(1).

    The reference's Keras "same" padding is kept as padding k // 2, which gives the same output
    sizes (32 -> 16 -> 8 -> 4 -> 2); weights use Keras' Glorot-uniform init and zero biases.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 64),
        kernel_sizes: Sequence[int] = (5, 3, 3, 3),
        hidden: int = 64,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, previous = image_size, in_channels
        for width, kernel in zip(channels, kernel_sizes, strict=True):
            layers += [nn.Conv2d(previous, width, kernel, stride=2, padding=kernel // 2), nn.SiLU()]
            size = (size + 2 * (kernel // 2) - kernel) // 2 + 1
            previous = width
        layers += [nn.Flatten(), nn.Linear(previous * size * size, hidden), nn.SiLU(), nn.Linear(hidden, 1)]
        self.net = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    @classmethod
    def from_config(cls, config) -> SwishEnergyNet:
        return cls(config.in_channels, config.channels, config.kernel_sizes, config.hidden, config.image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores, shape (N,)."""
        return self.net(x).squeeze(-1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        return -self.forward(x)
