"""The ``autograd`` backend: the reference loop, the sampler's own step with ``torch.autograd.grad``.

Right for any nn.Module on any device; the other backends are checked against it. Model weights are
frozen while sampling, so only the input gradient is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from genframe import SampleOutput

#: one Langevin step: (model, x, generator, step_size) -> the next x (x itself not modified)
Step = Callable[[nn.Module, torch.Tensor, "torch.Generator | None", float], torch.Tensor]


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


class AutogradChains:
    """The reference loop of ``step`` (the sampler's) on ``model``; reads the weights as it runs."""

    name = "autograd"

    def __init__(self, model: nn.Module, step: Step) -> None:
        self.model, self.step = model, step

    def bind(self) -> AutogradChains:
        return self

    def run(self, init: torch.Tensor, step_sizes: list[float], keep_every: int | None,
            generator: torch.Generator | None) -> SampleOutput:
        x = init.detach()
        chain = [x.clone()] if keep_every else []
        with frozen(self.model):
            for index, step_size in enumerate(step_sizes):
                x = self.step(self.model, x, generator, step_size)
                if keep_every and (index + 1) % keep_every == 0:
                    chain.append(x.clone())
        return SampleOutput(x, chain)
