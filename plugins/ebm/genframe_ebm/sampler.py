"""SGLD (Langevin dynamics) sampler: noisy gradient ascent on the score with clipping and clamping.

Each step, exactly as the reference: x += N(0, noise); clamp to [-1, 1]; g = d score / dx;
clip g to +-grad_clip; x += step_size * g; clamp to [-1, 1]. Model weights are frozen while
sampling, so only the input gradient is computed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from genframe.interfaces import SampleOutput, Sampler


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Turn off weight gradients (and restore them afterwards): sampling needs only d score / dx."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad():  # callers may sample under torch.no_grad()
            yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


class SGLDSampler(Sampler):
    """Langevin sampler over images in [-1, 1]; ``steps`` is the training default."""

    def __init__(
        self,
        step_size: float = 10.0,
        noise: float = 0.005,
        grad_clip: float = 0.03,
        steps: int = 60,
        generate_steps: int = 1000,
        example_shape: Sequence[int] = (1, 32, 32),
    ) -> None:
        self.step_size, self.noise, self.grad_clip = step_size, noise, grad_clip
        self.steps, self.generate_steps = steps, generate_steps
        self.example_shape = tuple(example_shape)

    @classmethod
    def from_config(cls, config, example_shape: Sequence[int]) -> SGLDSampler:
        return cls(config.step_size, config.noise, config.grad_clip, config.steps, config.generate_steps, example_shape)

    def init_state(self, n, device="cpu", generator=None) -> torch.Tensor:
        """Uniform noise in [-1, 1]."""
        return torch.rand((n, *self.example_shape), generator=generator, device=device) * 2 - 1

    def step(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One Langevin step from ``x`` (not modified); weights must already be frozen."""
        x = x + self.noise * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x.clamp_(-1.0, 1.0).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).sum(), x)
        return x.detach().add_(grad.clamp_(-self.grad_clip, self.grad_clip), alpha=self.step_size).clamp_(-1.0, 1.0)

    def sample(self, model, init, steps=None, keep_every=None, generator=None) -> SampleOutput:
        """Run ``steps`` (default: the training steps) Langevin steps from ``init``.

        With ``keep_every=k`` the chain holds the start and every k-th state (for GIFs).
        """
        steps = self.steps if steps is None else steps
        x = init.detach()
        chain = [x.clone()] if keep_every else []
        with frozen(model):
            for index in range(steps):
                x = self.step(model, x, generator)
                if keep_every and (index + 1) % keep_every == 0:
                    chain.append(x.clone())
        return SampleOutput(x, chain)
