"""Contrastive-divergence trainer: real images up, replay-buffer SGLD samples down, scores kept small.

loss = mean(score_fake) - mean(score_real) + alpha * mean(score_real^2 + score_fake^2)
       [+ r1 / 2 * mean ||d score_real / dx||^2, the optional R1 penalty]

With ``trainer.objective = "matching"`` the score's gradient is first fitted to a flow from noise to the data
alone (``genframe_ebm.matching``), then contrastive divergence joins it for the rest of the run.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from torch import nn

from genframe import Dataset, DivergenceError, RateSchedule, Trainer, restore_generator, steps_of
from genframe_ebm.buffer import ReplayBuffer, oldest_first
from genframe_ebm.matching import matching_loss
from genframe_ebm.sampler import SGLDSampler

VALIDATION_SEED = 20_240_601  # fixed noise: validation is comparable across epochs and draws no training randomness


def r1_penalty(model: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """mean over images of ||d score / dx||^2 at real images, differentiable in the weights (R1)."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(real).sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


def cd_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor, alpha: float) -> dict[str, torch.Tensor]:
    """The reference loss and its parts."""
    cdiv = fake_scores.mean() - real_scores.mean()
    reg = alpha * (real_scores.square() + fake_scores.square()).mean()
    return {"loss": cdiv + reg, "reg": reg, "cdiv": cdiv, "real": real_scores.mean(), "fake": fake_scores.mean()}


class CDTrainer(Trainer):
    """Contrastive divergence: real images up, the replay buffer's Langevin chains down; or energy matching first
    (``trainer.objective = "matching"``), contrastive divergence joining it after ``trainer.matching_steps``."""

    def __init__(
        self,
        model: nn.Module,
        sampler: SGLDSampler,
        config: Any,
        device: torch.device,
        seed: int = 0,
    ) -> None:
        """``config`` is the whole EBM config (trainer, buffer sections)."""
        self.model, self.sampler, self.device = model, sampler, device
        tcfg = config.trainer
        self.alpha, self.real_noise, self.val_batch_size = tcfg.alpha, tcfg.real_noise, tcfg.val_batch_size
        self.score_limit, self.lr = tcfg.score_limit, tcfg.lr
        self.r1, self.r1_every = tcfg.r1, tcfg.r1_every
        self.objective, self.matching_steps = tcfg.objective, tcfg.matching_steps
        self.matching_weight, self.matching_decay_from, self.coupling = (tcfg.matching_weight,
                                                                         tcfg.matching_decay_from, tcfg.coupling)
        self.matching_time = (config.sampler.steps * config.sampler.step_size if tcfg.matching_time == "sampler"
                              else tcfg.matching_time)
        self.sharpen_from: int | None = None  # the step contrastive divergence joined matching, once it has
        self.seed = seed
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.buffer = ReplayBuffer(config.buffer.size, sampler.example_shape, tcfg.batch_size,
                                   config.buffer.fresh_prob, device, self.generator)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=tcfg.lr, betas=tcfg.betas, eps=tcfg.eps)
        self.schedule = RateSchedule(self.optimizer, tcfg.lr, tcfg.lr_min, tcfg.lr_decay_steps)
        self.kept_precision: dict | None = None  # precision "auto"'s choice, as a resumed run recorded it

    @property
    def update_signals(self) -> tuple[str, ...]:
        """The gap between chain and data scores, the divergence guard's signal, on steps that draw chains."""
        return ("cdiv",) if self.sharpening else ()

    @property
    def sharpening(self) -> bool:
        """Whether contrastive divergence trains this step: always, or after matching's own steps."""
        if self.objective != "matching":
            return True
        if self.sharpen_from is None:  # fixed once reached: a resume with another length does not go back
            alone = steps_of(self.matching_steps, self.schedule.run_length)
            if alone is None or self.schedule.steps_taken < alone:
                return False
            self.sharpen_from = alone
        return self.schedule.steps_taken >= self.sharpen_from

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        real = batch + self.real_noise * torch.randn(batch.shape, generator=self.generator, device=batch.device)
        real = real.clamp_(-1.0, 1.0)
        sharpening = self.sharpening
        parts, scores = self._cd_parts(real) if sharpening else ({}, ())
        if self.objective == "matching":
            parts["matching"], path_scores = matching_loss(self.model, real, self.generator, self.matching_decay_from,
                                                           self.coupling, self.matching_time)
            scores = scores or (path_scores, path_scores)  # matching alone: its own scores are the ones bounded
            weighted = (self.matching_weight if sharpening else 1.0) * parts["matching"]
            parts["loss"] = parts["loss"] + weighted if "loss" in parts else weighted
        self.optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        self.check_divergence(parts["loss"], *scores)
        metrics = {name: value.detach() for name, value in parts.items()}
        if self.schedule.varies:  # a constant rate is in the config already
            metrics["lr"] = torch.tensor(self.schedule.rate())
        return metrics

    def _cd_parts(self, real: torch.Tensor) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Contrastive divergence's loss and its parts, and the scores of the real and the chains' images."""
        fake = self.sampler.sample(self.model, self.buffer.draw(real.shape[0]), generator=self.generator).images
        self.buffer.push(fake)
        real_scores, fake_scores = self.model(torch.cat([real, fake])).split(real.shape[0])
        parts = cd_loss(real_scores, fake_scores, self.alpha)
        if self.r1 > 0:
            # lazy: every r1_every-th step, weighted by r1_every, so the mean pull is the same. The metric
            # is the penalty's share of the loss, 0 on the steps between, so its logged mean is the mean share.
            parts["r1"] = torch.zeros((), device=real.device)
            if self.schedule.steps_taken % self.r1_every == 0:
                parts["r1"] = 0.5 * self.r1 * self.r1_every * r1_penalty(self.model, real)
                parts["loss"] = parts["loss"] + parts["r1"]
        return parts, (real_scores, fake_scores)

    def apply_update(self) -> None:
        """Adam at the schedule's rate for this step."""
        self.schedule.apply()
        self.optimizer.step()
        self.schedule.advance()

    def scale_learning_rate(self, factor: float) -> list[float]:
        """After a divergence: every later step's rate (schedule included) is multiplied by ``factor``."""
        return self.schedule.scale(factor)

    def set_run_length(self, total_steps: int) -> None:
        """A learning-rate decay, and matching's own steps, written as a share of the run follow its length."""
        self.schedule.set_run_length(total_steps)

    def check_divergence(self, loss: torch.Tensor, real: torch.Tensor | None = None,
                         fake: torch.Tensor | None = None) -> None:
        """Refuse the update if the loss, scores or gradients are non-finite or the scores out of bounds.
        One host sync per step for the flag; the details are worked out only on failure. The divergence
        signal, cdiv, goes to the callbacks through ``update_signals`` (the guard's limit, the settle gate)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack([g.detach().norm() for g in grads]))
        peak = (torch.zeros((), device=loss.device) if real is None or fake is None
                else torch.maximum(real.detach().abs().max(), fake.detach().abs().max()))
        if bool(torch.isfinite(loss) & torch.isfinite(grad_norm) & (peak <= self.score_limit)):
            return
        if not torch.isfinite(loss):
            raise DivergenceError(f"non-finite loss ({float(loss)})")
        if not torch.isfinite(peak) or peak > self.score_limit:
            raise DivergenceError(f"score {float(peak):.4g} beyond trainer.score_limit={self.score_limit:g}")
        raise DivergenceError(f"non-finite gradients (norm {float(grad_norm)})")

    @torch.no_grad()
    def validate(self, dataset: Dataset) -> dict[str, float]:
        """cdiv between real test images and uniform noise (no sampling), as the reference."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(VALIDATION_SEED)
        real_sum = fake_sum = 0.0
        total = len(dataset)
        for start in range(0, total, self.val_batch_size):
            index = torch.arange(start, min(start + self.val_batch_size, total), device=self.device)
            real = dataset.get_batch(index)
            noise = torch.rand(real.shape, generator=generator, device=self.device) * 2 - 1
            real_sum += self.model(real).sum()
            fake_sum += self.model(noise).sum()
        real_mean, fake_mean = float(real_sum) / total, float(fake_sum) / total
        return {"cdiv": fake_mean - real_mean, "real": real_mean, "fake": fake_mean}

    def reseed(self, seed: int) -> None:
        """Fresh chain noise, real-image noise and replay draws: a torchrun process's own, or after a rollback."""
        self.generator.manual_seed(seed)

    def work_per_step(self, batch_size: int) -> tuple[str, float]:
        """Langevin image-steps: nearly all of an EBM's training cost; for energy matching, whose steps draw chains
        only while sharpening, the images trained on."""
        if self.objective == "matching":
            return "images", float(batch_size)
        return "img-steps", float(batch_size * self.sampler.steps)

    def preview_images(self, n: int) -> dict[str, torch.Tensor]:
        return {"buffer": self.buffer.newest(n)}

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, replay buffer and RNG; the core saves the model's weights itself."""
        state = {"optimizer": self.optimizer.state_dict(), "buffer": self.buffer.state_dict(),
                 "generator": self.generator.get_state(), "config_lr": self.lr, **self.schedule.state_dict()}
        chosen = getattr(self.sampler, "chosen_precision", None) or self.kept_precision
        if chosen is not None:  # precision "auto" chose: the run keeps that choice on resume
            state["chain_precision"] = chosen
        if self.sharpen_from is not None:
            state["sharpen_from"] = self.sharpen_from
        return state

    def reshard_state(self, states: list[dict[str, Any]], rank: int, world_size: int) -> dict[str, Any]:
        """Every saved process's replay buffer pooled, then split so that each process holds its own chains.
        The pool interleaves the buffers by age (the newest of each, then the next newest of each...), and
        process ``rank`` takes every ``world_size``-th chain of it, its newest up to the buffer's size: fewer
        processes keep the newest chains of all, more share them out. Where the pool is short, a process
        starts from a batch of fresh noise, as a new buffer does. The optimizer is the same on every process;
        the random stream is the saved process's (the core reseeds processes beyond them)."""
        own = dict(states[rank % len(states)])
        newest_first = [oldest_first(state["buffer"]).flip(0) for state in states]
        order = [(i, r) for i in range(max(len(chains) for chains in newest_first)) for r in range(len(states))
                 if i < len(newest_first[r])]
        pooled = torch.stack([newest_first[r][i] for i, r in order]).flip(0)  # oldest first again
        share = pooled[rank::world_size][-self.buffer.capacity:]
        if share.shape[0] == 0:  # more processes than chains: this one starts as a fresh buffer does
            share = self.buffer.uniform(self.buffer.size or 1).cpu()
        own["buffer"] = {"storage": share, "head": 0, "size": share.shape[0], "capacity": share.shape[0]}
        return own

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        saved_lr = state.get("config_lr", self.lr)
        # A checkpoint from before the schedule kept the rollbacks' factor only in the optimizer's rate.
        factor = state.get("lr_scale", self.optimizer.param_groups[0]["lr"] / saved_lr)
        if saved_lr != self.lr:  # `--set trainer.lr=...` on resume wins over any rollback's lowering
            factor = 1.0
        self.schedule.load_state_dict({"steps_taken": state.get("steps_taken", 0), "lr_scale": factor})
        self.buffer.load_state_dict(state["buffer"])
        restore_generator(self.generator, state["generator"])
        self.sharpen_from = state.get("sharpen_from")
        chosen = state.get("chain_precision")
        if chosen is not None and getattr(self.sampler, "precision", None) == "auto" and \
                getattr(self.sampler, "chosen_precision", None) is None:  # a resume (a rollback keeps what it has)
            self.sampler.precision = chosen["precision"]  # the run's recorded choice, not a new race's
            self.kept_precision = chosen
            if os.environ.get("RANK", "0") == "0":
                print(f"genframe: sampler.precision='auto' keeps {chosen['precision']}, the run's recorded choice "
                      f"({chosen['why']})", file=sys.stderr, flush=True)
