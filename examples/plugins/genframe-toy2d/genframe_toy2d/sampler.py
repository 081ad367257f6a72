"""Langevin dynamics on the energy net: x += step_size * d score / dx + noise * N(0, I), kept in the box.

Chains start uniform in [-box, box]^2. The gradient is taken with respect to the points only, so the
net's weights, their ``.grad`` and ``requires_grad`` flags are never touched: the sampler can run
inside a training step or on a loaded model alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from genframe import SampleOutput, Sampler


@contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, ops on a few hundred points gain nothing from intra-op threads and pay a fork/join
    each: a 40-step chain of 256 points took 19 ms on one thread, 740 ms on two of a busy 2-core machine."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class LangevinSampler(Sampler):
    def __init__(self, steps: int = 40, generate_steps: int = 40, step_size: float = 0.01, noise: float = 0.05,
                 box: float = 3.0) -> None:
        self.steps, self.generate_steps = steps, generate_steps
        self.step_size, self.noise, self.box = step_size, noise, box

    @classmethod
    def from_config(cls, config) -> LangevinSampler:
        return cls(config.steps, config.generate_steps, config.step_size, config.noise, config.box)

    def init_state(self, n, device="cpu", generator=None) -> torch.Tensor:
        return (torch.rand((n, 2), generator=generator, device=device) * 2 - 1) * self.box

    def sample(self, model, init, steps=None, keep_every=None, generator=None) -> SampleOutput:
        """``steps`` Langevin steps from ``init`` (default: the generation steps); with ``keep_every``, the
        chain holds the start, every ``keep_every``-th state and the end."""
        steps = self.generate_steps if steps is None else steps
        points = init.detach().clone()
        chain = [points] if keep_every else []
        with one_thread(points.device):
            for step in range(1, steps + 1):
                with torch.enable_grad():
                    moving = points.detach().requires_grad_(True)
                    (grad,) = torch.autograd.grad(model(moving).sum(), moving)
                noise = torch.randn(points.shape, generator=generator, device=points.device, dtype=points.dtype)
                points = (points + self.step_size * grad + self.noise * noise).clamp(-self.box, self.box)
                if keep_every and (step % keep_every == 0 or step == steps):
                    chain.append(points)
        return SampleOutput(points, chain)
