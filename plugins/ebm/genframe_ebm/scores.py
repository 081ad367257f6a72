"""The EBM's scores for ``genframe score`` and ``genframe ood``: how typical the energy net finds an image.

- ``nearest`` (the default): minus the distance from x to the closest of the model's own samples (10000 of
  them, drawn once per loaded model), measured in the energy net's features (its last two convolutions'
  activations, each layer in units of the samples' own nearest-neighbour spread). The sampler has learnt
  the digits' shapes better than the energy's value ranks them, and the net's features see shapes rather
  than pixels: on the fast recipe's model it told MNIST from Fashion-MNIST, constant images and upside-down
  digits best of all (on the reference recipe's, whose samples are poorer, the energy's own scores match it
  on most sets: research/reports/energy-study.md);
- ``gradnorm``: -|d s / dx|, the score's steepness at x, one backward pass: the best of the energy alone. The
  fast recipe's R1 penalty trains the net to be flat at real images, and off the data the short-run chains
  leave it steep;
- ``score``: the trained net's output s(x) = -E(x), one forward pass;
- ``drop``: s(x) - s(x after 5 Langevin steps): a typical image gains little by moving.

A snapshot mixture is scored by its trained net (its last member). The mixture's mean score and the
score after 5 Langevin steps were measured too and did no better (research/reports/energy-study.md).
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from genframe import RunError
from genframe_ebm.sampler import frozen

RELAX_STEPS = 5  # Langevin steps of the drop score
POOL_SIZE = 10000  # the nearest score's samples: twice as many did only a little better (research/reports/energy-study.md)
POOL_SEED, POOL_STREAM = 0, 23  # the pool is the same whatever the images and the generator of a call
UNIT_SAMPLES = 2000  # samples whose nearest-neighbour distances set each layer's unit
_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (its state, SampleFeatures)


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


def features(net: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The energy net's activations after its last two convolutions (each with its Swish), one row per image
    and layer: in the shipped nets a 4x4 map of 64 channels, which still says where strokes are (upside-down
    digits are told apart by it), and the 2x2 map the head reads, which tells textures apart (Fashion-MNIST)."""
    layers = getattr(net, "net", None)
    convolutions = [i for i, layer in enumerate(layers or []) if isinstance(layer, nn.Conv2d)]
    if not convolutions:
        raise RunError(f"the nearest score reads the convolutions of the ebm's Swish CNN; this model "
                       f"({type(net).__name__}) has none: use --score gradnorm")
    cuts = {index + 2 for index in convolutions[-2:]}  # each convolution and the activation after it
    out, x = [], images
    with torch.no_grad():
        for index, layer in enumerate(layers, start=1):
            x = layer(x)
            if index in cuts:
                out.append(x.flatten(1))
    return out


class SampleFeatures:
    """The features of a model's samples, and each layer's unit: the spread of the samples' distances to their
    own nearest other sample, so that both layers weigh alike (as a z-score would, measured on the model's
    samples rather than on held-out data)."""

    def __init__(self, net: nn.Module, samples: torch.Tensor) -> None:
        if len(samples) < 3:
            raise RunError(f"the nearest score needs at least 3 samples to measure against, not {len(samples)}")
        chunks = [features(net, chunk) for chunk in samples.split(1000)]
        self.layers = [torch.cat(parts) for parts in zip(*chunks)]
        self.units = [_nearest_distance(layer[:UNIT_SAMPLES], layer, exclude_self=True).std().clamp_min(1e-12)
                      for layer in self.layers]

    @classmethod
    def drawn(cls, model: nn.Module, sampler) -> SampleFeatures:
        """Those of ``POOL_SIZE`` samples the model makes with its sampler, as ``genframe sample`` would."""
        from genframe import generate_in_chunks

        device = next(model.parameters()).device
        samples = generate_in_chunks(sampler, model, POOL_SIZE, None, POOL_SEED, POOL_STREAM, device).images
        return cls(trained_net(model), samples.to(device))

    def distance(self, images_features: list[torch.Tensor]) -> torch.Tensor:
        return sum(_nearest_distance(mine, layer) / unit
                   for mine, layer, unit in zip(images_features, self.layers, self.units))


def _nearest_distance(points: torch.Tensor, pool: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
    """Each point's distance to its nearest pool row (to its second nearest where the points are the pool's
    first rows, whose nearest is themselves)."""
    return torch.cdist(points, pool).topk(2 if exclude_self else 1, dim=1, largest=False).values[:, -1]


def _weights_state(model: nn.Module) -> tuple:
    """What a pool of samples depends on besides the model object: its device and its weights' in-place
    updates (a training step or ``load_state_dict`` bumps them), so a moved or changed model draws anew."""
    return (str(next(model.parameters()).device), *(p._version for p in model.parameters()))


def nearest(model, sampler, images, generator=None) -> torch.Tensor:
    state = _weights_state(model)
    if model not in _POOLS or _POOLS[model][0] != state:  # drawn on first use, kept while the model is unchanged
        _POOLS[model] = (state, SampleFeatures.drawn(model, sampler))
    return -_POOLS[model][1].distance(features(trained_net(model), images))


SCORES = {"nearest": nearest, "gradnorm": gradnorm, "score": raw, "drop": drop}
