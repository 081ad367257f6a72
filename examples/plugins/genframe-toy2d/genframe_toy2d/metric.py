"""How good are samples of ``ring8``? The recipe's own quality metric, used by ``genframe eval``.

- ``modes``: the share of the eight modes that are covered, a mode counting once at least a quarter of
  its fair share of the samples (N / 32) lies within 3 standard deviations of its centre;
- ``near``: the share of samples within 3 standard deviations of some centre (no points in between);
- ``energy_distance``: 2 E|X - Y| - E|X - X'| - E|Y - Y'| between the samples X and the test split Y
  (unbiased; about 0 for samples of the true distribution, it grows with any difference).

The anchors give the scale: the training points (the floor) and uniform noise in the box.
"""

from __future__ import annotations

import torch

from genframe import PluginError
from genframe_toy2d.data import MODES, STD, Ring8, centres

NEAR = 3 * STD
CHUNK = 1024  # rows of pairwise distances at a time: memory stays small for any number of samples


def mean_distance(a: torch.Tensor, b: torch.Tensor, same: bool = False) -> float:
    """Mean Euclidean distance between rows of ``a`` and ``b``; ``same``: a is b, leave out the zero diagonal."""
    total = sum(float(torch.cdist(a[i : i + CHUNK], b).sum()) for i in range(0, len(a), CHUNK))
    pairs = len(a) * (len(b) - 1) if same else len(a) * len(b)
    return total / max(pairs, 1)


class RingMetric:
    def __init__(self, box: float = 3.0) -> None:
        self.test = Ring8("test").points.double()
        self.train = Ring8("train").points.double()
        self.box = box
        self.test_spread = mean_distance(self.test, self.test, same=True)
        self.centres = centres().double()

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        if samples.dim() != 2 or samples.shape[1] != 2:
            raise PluginError(f"the ring8 metric measures points of shape (2,), not {tuple(samples.shape[1:])}")
        points = samples.detach().cpu().double()
        nearest = torch.cdist(points, self.centres).min(dim=1)
        near = nearest.values < NEAR
        counts = torch.bincount(nearest.indices[near], minlength=MODES)
        covered = counts >= max(1.0, len(points) / (4 * MODES))
        energy = 2 * mean_distance(points, self.test) - mean_distance(points, points, same=True) - self.test_spread
        return {"modes": float(covered.double().mean()), "near": float(near.double().mean()),
                "energy_distance": energy}

    def anchors(self, n: int) -> dict[str, dict[str, float]]:
        generator = torch.Generator().manual_seed(0)
        train = self.train[torch.randperm(len(self.train), generator=generator)[:n]]
        noise = (torch.rand((n, 2), generator=generator, dtype=torch.float64) * 2 - 1) * self.box
        return {"train_points": self(train), "uniform_noise": self(noise)}
