"""The EBM's scores for ``genframe score`` and ``genframe ood``: how typical the energy net finds an image.

- ``score``: the trained net's output s(x) = -E(x), one forward pass;
- ``ensemble``: the mean of s(x) over a snapshot mixture's members (the trained net alone otherwise);
- ``gradnorm``: -|d s / dx|, small where the net is flat, as it is trained to be at real images (R1);
- ``relaxed``: s after a few Langevin steps from x, what the image settles into;
- ``drop``: s(x) - s(after a few Langevin steps): a typical image gains little by moving.
"""

from __future__ import annotations

import torch
from torch import nn

from genframe_ebm.sampler import frozen

RELAX_STEPS = 5  # Langevin steps of the relaxed and drop scores


def members(model: nn.Module) -> list[nn.Module]:
    """The nets a model is made of: a snapshot mixture's members (the trained net last), or the model."""
    members = getattr(model, "members", None)
    return list(members) if isinstance(members, nn.ModuleList) else [model]


def trained_net(model: nn.Module) -> nn.Module:
    return members(model)[-1]


def raw(model, sampler, images, generator=None) -> torch.Tensor:
    with torch.no_grad():
        return trained_net(model)(images)


def ensemble(model, sampler, images, generator=None) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([net(images) for net in members(model)]).mean(0)


def gradnorm(model, sampler, images, generator=None) -> torch.Tensor:
    net = trained_net(model)
    with frozen(net):
        x = images.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x).sum(), x)
    return -grad.flatten(1).norm(dim=1)


def relaxed(model, sampler, images, generator=None) -> torch.Tensor:
    net = trained_net(model)
    settled = sampler.sample(net, images, steps=RELAX_STEPS, generator=generator).images
    with torch.no_grad():
        return net(settled)


def drop(model, sampler, images, generator=None) -> torch.Tensor:
    net = trained_net(model)
    settled = sampler.sample(net, images, steps=RELAX_STEPS, generator=generator).images
    with torch.no_grad():
        return net(images) - net(settled)


SCORES = {"score": raw, "ensemble": ensemble, "gradnorm": gradnorm, "relaxed": relaxed, "drop": drop}
