"""A velocity model's log-likelihood of images (a family's ``score``, for ``genframe score`` and ``genframe ood``):
the probability-flow ODE run backwards from the image (t = 1) to noise (t = 0), with the change of density
log p1(x) = log N(x0; 0, I) - integral of div v(x_t, t) dt, the divergence estimated by Hutchinson's trick
(one Rademacher probe per step, drawn from the caller's seeded generator).

The estimate is unbiased but noisy: its spread over probes is what ``genframe score --seed`` moves. Scores are
in nats per dimension, higher = more typical.
"""

from __future__ import annotations

import math

import torch


def flow_log_likelihood(model: torch.nn.Module, images: torch.Tensor, steps: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(images) per dimension, (N,), by ``steps`` Euler steps of the reverse ODE."""
    x = images.detach().float()
    dims = x[0].numel()
    divergence = torch.zeros(len(x), device=x.device, dtype=torch.float64)
    h = 1.0 / steps
    for k in range(steps):
        t = 1.0 - k * h
        probe = torch.randint(0, 2, x.shape, generator=generator, device=x.device).float() * 2 - 1
        with torch.enable_grad():
            state = x.detach().requires_grad_(True)
            velocity = model(state, torch.full((len(x),), t, device=x.device))
            if velocity.requires_grad:  # else the velocity does not depend on x: no divergence
                (vjp,) = torch.autograd.grad(velocity, state, probe, allow_unused=True)
                if vjp is not None:
                    divergence += (vjp * probe).flatten(1).sum(dim=1).double() * h
        x = (x - h * velocity).detach()
    prior = -0.5 * (x.flatten(1).double().square().sum(dim=1) + dims * math.log(2 * math.pi))
    return ((prior - divergence) / dims).float()
