"""The convolutional VAE: an encoder to a diagonal Gaussian q(z|x), a mirrored decoder to Bernoulli logits.

Likelihood: each pixel, binarised at mid-grey (x > 0 on genframe's [-1, 1] scale), is a Bernoulli
variable whose logit the decoder predicts. That is a proper discrete likelihood, so the ELBO is a
true lower bound on log p(x) in nats (the classic binarised-MNIST setting), unlike a cross-entropy
on grey levels. Images shown or sampled are the Bernoulli means, mapped back to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from genframe import Model


def binarise(images: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1, 1] -> {0, 1}: on above mid-grey."""
    return (images > 0).to(images.dtype)


def logits_to_images(logits: torch.Tensor) -> torch.Tensor:
    """Bernoulli means (probabilities in [0, 1]) as images in genframe's [-1, 1] range."""
    return torch.sigmoid(logits) * 2 - 1


class ConvVAE(Model):
    """Stride-2 convs (each halves the image), then a linear layer to (mean, log-variance); the decoder mirrors it."""

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 32,
        channels: Sequence[int] = (32, 64, 128),
        latent_dim: int = 16,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.feature_size = image_size // 2 ** len(channels)
        self.feature_shape = (channels[-1], self.feature_size, self.feature_size)
        features = channels[-1] * self.feature_size**2

        encoder: list[nn.Module] = []
        previous = in_channels
        for width in channels:  # kernel 4, stride 2, padding 1 halves the size exactly
            encoder += [nn.Conv2d(previous, width, 4, stride=2, padding=1), nn.SiLU()]
            previous = width
        self.encoder = nn.Sequential(*encoder, nn.Flatten(), nn.Linear(features, 2 * latent_dim))

        decoder: list[nn.Module] = [nn.Linear(latent_dim, features), nn.SiLU(), nn.Unflatten(1, self.feature_shape)]
        widths = [*reversed(channels), in_channels]
        for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            decoder.append(nn.ConvTranspose2d(width_in, width_out, 4, stride=2, padding=1))
            if index < len(widths) - 2:  # no activation on the output: those are logits
                decoder.append(nn.SiLU())
        self.decoder = nn.Sequential(*decoder)

    @classmethod
    def from_config(cls, config) -> ConvVAE:
        return cls(config.in_channels, config.image_size, config.channels, config.latent_dim)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior q(z|x) as (mean, log-variance), each (N, latent_dim)."""
        mean, log_var = self.encoder(images).chunk(2, dim=1)
        return mean, log_var

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of every pixel, shaped like the images."""
        return self.decoder(latents)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The deterministic reconstruction (decoded posterior mean) in [-1, 1]; training uses ``encode``/``decode``."""
        mean, _ = self.encode(images)
        return logits_to_images(self.decode(mean))


def elbo_terms(model: ConvVAE, images: torch.Tensor, noise: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image averages, in nats, of the ELBO's parts for ``images`` in [-1, 1].

    ``noise`` is the standard-normal draw for the reparameterisation z = mean + std * noise; it is an
    argument so the caller owns the random stream (exact resume) and tests can fix it.
    recon = -E_q[log p(x|z)] (one sample), kl = KL(q(z|x) || N(0, I)) in closed form, elbo = -(recon + kl).
    """
    mean, log_var = model.encode(images)
    latents = mean + torch.exp(0.5 * log_var) * noise
    logits = model.decode(latents)
    recon = F.binary_cross_entropy_with_logits(logits, binarise(images), reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mean.square() + log_var.exp() - 1 - log_var).sum(1)
    return {"recon": recon.mean(), "kl": kl.mean(), "elbo": -(recon + kl).mean()}
