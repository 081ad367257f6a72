"""The ``fused`` backend: the Swish CNN's input gradient written out in ATen ops (swish_plan.py), no autograd.

Runs on any device; on CPU the chains are split across worker threads (threaded.py). Each step is the
reference step's arithmetic, in place on a chunk of chains, with the plan's hand-written gradient in
place of ``autograd.grad``: the same chain from the same seed, to float rounding.
"""

from __future__ import annotations

import torch

from genframe_ebm.backends.swish_plan import SwishPlan, Weights
from genframe_ebm.backends.threaded import ThreadedBackend


class FusedStep:
    """One SGLD step on a chunk of chains with the plan's gradient (a ``ChunkStep``)."""

    draws_noise = False

    def __init__(self, plan: SwishPlan, weights: Weights, grad_clip: float) -> None:
        self.plan, self.weights, self.grad_clip = plan, weights, grad_clip

    def workspace(self) -> dict:
        return {}  # activation buffers, reused across a block's steps (swish_plan.grad_from)

    def step(self, x: torch.Tensor, noise: torch.Tensor, step_size: float, scratch: dict) -> None:
        x.add_(noise).clamp_(-1.0, 1.0)
        grad = self.plan.input_grad(self.weights, x, scratch)
        x.add_(grad.clamp_(-self.grad_clip, self.grad_clip), alpha=step_size).clamp_(-1.0, 1.0)

    def step_seeded(self, *args) -> None:
        raise NotImplementedError("the fused step takes its noise from the caller's generator")


def fused_backend(plan: SwishPlan, noise: float, grad_clip: float, threads: int) -> ThreadedBackend:
    """The fused backend for ``plan``'s net; the weights are read at each ``run`` (training changes them)."""
    return ThreadedBackend("fused", lambda: FusedStep(plan, plan.weights(), grad_clip), noise, threads)
