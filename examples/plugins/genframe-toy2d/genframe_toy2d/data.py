"""The ``ring8`` dataset: eight Gaussians on a ring, made from a fixed seed (no files, no download).

Each split is drawn from its own seed, so train and test are independent samples of the same
distribution and every machine builds the same points. ``labels`` holds each point's mode index.
"""

from __future__ import annotations

import math

import torch

from genframe import Dataset

MODES = 8
RADIUS = 2.0
STD = 0.1
SIZES = {"train": 8000, "test": 2000}
SEEDS = {"train": 8, "test": 88}


def centres() -> torch.Tensor:
    """The eight mode centres, (8, 2), evenly spaced on a circle of radius ``RADIUS``."""
    angles = torch.arange(MODES, dtype=torch.float64) * (2 * math.pi / MODES)
    return (RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


class Ring8(Dataset):
    name = "ring8"
    num_classes = MODES

    def __init__(self, split: str = "train", root: str | None = None, download: bool = True) -> None:
        """``root`` and ``download`` are accepted for the core's dataset signature and not needed."""
        if split not in SIZES:
            raise ValueError(f"split must be one of {sorted(SIZES)}, not {split!r}")
        generator = torch.Generator().manual_seed(SEEDS[split])
        self.labels = torch.randint(0, MODES, (SIZES[split],), generator=generator)
        noise = torch.randn((SIZES[split], 2), generator=generator)
        self.points = centres()[self.labels] + STD * noise

    def __len__(self) -> int:
        return len(self.points)

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        return self.points[indices]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return (2,)

    def to(self, device: torch.device | str) -> Ring8:
        self.points, self.labels = self.points.to(device), self.labels.to(device)
        return self
