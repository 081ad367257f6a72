"""Ancestral sampling from the VAE: draw z from the N(0, I) prior, decode, show the Bernoulli means.

One decoder pass, so there are no steps: ``generate_steps`` stays ``None`` and ``sample`` ignores
``steps``. Asked for a chain (``keep_every``), it returns the final images as a one-frame chain.
"""

from __future__ import annotations

import torch

from genframe import SampleOutput, Sampler
from genframe_vae.model import logits_to_images


class PriorSampler(Sampler):
    generate_steps = None  # a single decoder pass: nothing to iterate

    def __init__(self, latent_dim: int = 16, temperature: float = 1.0) -> None:
        self.latent_dim, self.temperature = latent_dim, temperature

    @classmethod
    def from_config(cls, model_config, sampler_config) -> PriorSampler:
        return cls(model_config.latent_dim, sampler_config.temperature)

    def init_state(self, n, device="cpu", generator=None) -> torch.Tensor:
        """Prior latents z ~ N(0, temperature^2 I), shape (n, latent_dim)."""
        return self.temperature * torch.randn((n, self.latent_dim), generator=generator, device=device)

    def sample(self, model, init, steps=None, keep_every=None, generator=None) -> SampleOutput:
        """Decode the latents ``init`` to images in [-1, 1]; ``steps`` and ``generator`` are not needed."""
        with torch.no_grad():
            images = logits_to_images(model.decode(init))
        return SampleOutput(images, [images] if keep_every else [])
