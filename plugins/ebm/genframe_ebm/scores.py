"""The EBM's scores for ``genframe score`` and ``genframe ood``: how typical the energy net finds an image.

- ``gradnorm`` (the default): -|d s / dx|, the score's steepness at x. The fast recipe's R1 penalty trains the
  net to be flat at real images, and off the data the short-run chains leave it steep: it told MNIST from
  Fashion-MNIST, constant images and upside-down digits better than the raw score did (docs/using-the-energy.md);
- ``score``: the trained net's output s(x) = -E(x), one forward pass;
- ``drop``: s(x) - s(x after 5 Langevin steps): a typical image gains little by moving.

A snapshot mixture is scored by its trained net (its last member). The mixture's mean score and the
score after 5 Langevin steps were measured too and did no better (docs/reports/energy-study.md).
"""

from __future__ import annotations

import torch
from torch import nn

from genframe_ebm.sampler import frozen

RELAX_STEPS = 5  # Langevin steps of the drop score


def trained_net(model: nn.Module) -> nn.Module:
    """The net a model was trained as: a snapshot mixture's last member, or the model itself."""
    members = getattr(model, "members", None)
    return members[-1] if isinstance(members, nn.ModuleList) else model


def gradnorm(model, sampler, images, generator=None) -> torch.Tensor:
    net = trained_net(model)
    with frozen(net):
        x = images.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x).sum(), x)
    return -grad.flatten(1).norm(dim=1)


def raw(model, sampler, images, generator=None) -> torch.Tensor:
    with torch.no_grad():
        return trained_net(model)(images)


def drop(model, sampler, images, generator=None) -> torch.Tensor:
    net = trained_net(model)
    settled = sampler.sample(net, images, steps=RELAX_STEPS, generator=generator).images
    with torch.no_grad():
        return net(images) - net(settled)


SCORES = {"gradnorm": gradnorm, "score": raw, "drop": drop}
