"""ELBO trainer: one Adam step per batch on -ELBO (recon + kl_weight * kl), validation ELBO on test data.

All of training's randomness (the reparameterisation noise) comes from one ``torch.Generator``
that the trainer owns and checkpoints, so a resumed run continues bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch

from genframe import Dataset, Trainer, restore_generator
from genframe_vae.model import ConvVAE, elbo_terms

# Keeps the noise stream apart from the core's data-order streams, which are seeded from small
# numbers derived from the same config.seed.
NOISE_STREAM_OFFSET = 0x5EED_0000_0000
# Validation draws its noise from a fresh, fixed stream: comparable across epochs, and it never
# touches the training stream (validating must not change what training does next).
VALIDATION_SEED = 20_240_909


class ELBOTrainer(Trainer):
    def __init__(self, model: ConvVAE, config: Any, device: torch.device) -> None:
        """``config`` is the whole VAE config (its trainer section and seed)."""
        self.model, self.device = model, device
        tcfg = config.trainer
        self.kl_weight, self.val_batch_size = tcfg.kl_weight, tcfg.val_batch_size
        self.seed = config.seed
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(NOISE_STREAM_OFFSET + self.seed)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.lr, betas=tcfg.betas)
        self.last_batch: torch.Tensor | None = None  # for the reconstruction preview only

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((n, self.model.latent_dim), generator=generator, device=self.device)

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = elbo_terms(self.model, batch, self.noise(batch.shape[0], self.generator))
        loss = terms["recon"] + self.kl_weight * terms["kl"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # the core steps self.optimizer (Trainer.apply_update)
        self.last_batch = batch.detach()
        return {"loss": loss.detach(), **{name: value.detach() for name, value in terms.items()}}

    def reseed(self, seed: int) -> None:
        """A fresh noise stream: each torchrun process beyond the first, and the steps redone after a rollback."""
        self.generator.manual_seed(NOISE_STREAM_OFFSET + seed)

    @torch.no_grad()
    def validate(self, dataset: Dataset) -> dict[str, float]:
        """recon, kl and elbo per image (nats) over the whole held-out split, one latent sample each."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(VALIDATION_SEED)
        sums = {"recon": 0.0, "kl": 0.0, "elbo": 0.0}
        total = len(dataset)
        for start in range(0, total, self.val_batch_size):
            index = torch.arange(start, min(start + self.val_batch_size, total), device=self.device)
            images = dataset.get_batch(index)
            terms = elbo_terms(self.model, images, self.noise(images.shape[0], generator))
            for name, value in terms.items():  # batch means -> sums, so a short last batch weighs right
                sums[name] += value * images.shape[0]
        return {name: float(value) / total for name, value in sums.items()}

    @torch.no_grad()
    def preview_images(self, n: int) -> dict[str, torch.Tensor]:
        """Training images and their reconstructions side by side (original, reconstruction, ...)."""
        if self.last_batch is None:
            return {}
        originals = self.last_batch[: max(1, n // 2)]
        pairs = torch.stack([originals, self.model(originals)], dim=1)
        return {"reconstructions": pairs.flatten(0, 1)[:n]}

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and noise stream; the core saves the model's weights itself."""
        return {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.generator, state["generator"])
