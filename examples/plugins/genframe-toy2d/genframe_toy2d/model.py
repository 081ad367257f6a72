"""The energy net: an MLP from a point (x, y) to a score, high where data is; energy E(x) = -score."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genframe import Model


class EnergyMLP(Model):
    def __init__(self, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 2
        for size in hidden:
            layers += [nn.Linear(width, size), nn.SiLU()]
            width = size
        self.net = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """Scores (N,) of points (N, 2)."""
        return self.net(points).squeeze(-1)
