"""Contrastive divergence: raise the score of data points, lower it on short Langevin chains from noise.

loss = mean(score_fake) - mean(score_real) + alpha * mean(score_real^2 + score_fake^2); the first two
terms are ``cdiv``, the gap the core's divergence guard watches. All of training's randomness (chain
starts and Langevin noise) comes from one ``torch.Generator`` the trainer owns and checkpoints, so a
resumed run continues bit for bit; ``reseed`` gives it a new seed (torchrun ranks, rollbacks).
"""

from __future__ import annotations

from typing import Any

import torch

from genframe import Dataset, Trainer, restore_generator
from genframe_toy2d.sampler import LangevinSampler

# Keeps the trainer's stream apart from the core's streams, which are seeded from small numbers.
NOISE_STREAM_OFFSET = 0x70_2D00_0000
# Validation draws its noise from a fixed stream of its own: comparable across epochs, and training's
# stream is never touched (validating must not change what training does next).
VALIDATION_SEED = 2_024_1111


class CDTrainer(Trainer):
    update_signals = ("cdiv",)  # the core's divergence guard watches it before each update

    def __init__(self, model: torch.nn.Module, sampler: LangevinSampler, config: Any, device: torch.device) -> None:
        """``config`` is the whole toy2d config (its trainer section and seed)."""
        self.model, self.sampler, self.device = model, sampler, device
        self.alpha = config.trainer.alpha
        self.generator = torch.Generator(device=device)
        self.reseed(config.seed)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.trainer.lr)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(NOISE_STREAM_OFFSET + seed)

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        init = self.sampler.init_state(batch.shape[0], device=self.device, generator=self.generator)
        fake = self.sampler.sample(self.model, init, steps=self.sampler.steps, generator=self.generator).images
        real_score, fake_score = self.model(batch), self.model(fake)
        cdiv = fake_score.mean() - real_score.mean()
        loss = cdiv + self.alpha * (real_score.square().mean() + fake_score.square().mean())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # the core steps the optimizer once callbacks have seen cdiv (update_signals)
        return {"loss": loss.detach(), "cdiv": cdiv.detach(), "real": real_score.mean().detach(),
                "fake": fake_score.mean().detach()}

    @torch.no_grad()
    def validate(self, dataset: Dataset) -> dict[str, float]:
        """The score gap between held-out points and uniform noise in the box (higher: data stands out)."""
        generator = torch.Generator(device=self.device).manual_seed(VALIDATION_SEED)
        points = dataset.get_batch(torch.arange(len(dataset), device=self.device))
        noise = self.sampler.init_state(len(dataset), device=self.device, generator=generator)
        real, fake = self.model(points).mean(), self.model(noise).mean()
        return {"cdiv": float(fake - real), "real": float(real)}

    def work_per_step(self, batch_size: int) -> tuple[str, float]:
        return "pt-steps", float(batch_size * self.sampler.steps)

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and random stream; the core saves the model's weights itself."""
        return {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.generator, state["generator"])
