"""Energy matching: the energy's gradient fitted to a flow from noise to the data, without Langevin chains.

On the straight path x_t = (1 - t) x0 + t x1 from the sampler's start noise x0 (uniform in [-1, 1]) to a
real image x1, the score s = -E is trained so that its gradient is the path's velocity, scaled down to nothing
as the path reaches the data:

    grad_x s(x_t) ~ c(t) (x1 - x0),    c(t) = min(1, (1 - t) / (1 - decay_from))

so gradient ascent on s (the Langevin sampler with no noise) carries noise to the data and stops there: real
images are resting points of the score, the equilibrium the contrastive phase then sharpens (Energy Matching,
Balcerak et al. 2025; Equilibrium Matching, Wang et al. 2025, whose truncated decay c(t) this is). The energy
is a scalar of the image alone, no time input, so scoring, OOD and completion keep their meaning.

``time`` sets the gradient's size: the fit is of ``time * grad_x s``, so ascent steps of size h cover the path in
``time / h`` steps. With ``time`` = the training chains' steps x their step size, the contrastive recipe's own
Langevin sampler (large steps on a small gradient) crosses the path in its own number of steps, and the
scores' levels stay near the small gap contrastive divergence keeps, so it can take over without a jolt.
"""

from __future__ import annotations

import torch
from torch import nn

import genframe


def matching_loss(model: nn.Module, data: torch.Tensor, generator: torch.Generator, decay_from: float,
                  coupling: str = "independent", time: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error per pixel between time * grad_x s(x_t) and the scaled velocity, differentiable in the
    weights; and the scores s(x_t), for the trainer's bound on them (matching fits slopes, not levels)."""
    noise = torch.rand(data.shape, generator=generator, device=data.device) * 2 - 1
    if coupling == "ot":  # straighter, uncrossed paths: a field of the image alone can follow them
        noise = genframe.ot_pairing(noise, data, generator)
    t = genframe.draw_path_times(data.shape[0], "uniform", generator, data.device)
    xt, velocity = genframe.straight_path(noise, data, t)
    scale = ((1 - t) / (1 - decay_from)).clamp(max=1.0).view(-1, *([1] * (data.dim() - 1)))
    xt = xt.detach().requires_grad_(True)
    scores = model(xt)
    (gradient,) = torch.autograd.grad(scores.sum(), xt, create_graph=True)
    return (time * gradient - scale * velocity).square().flatten(1).mean(1).mean(), scores.detach()
