"""Conditional flow matching: regress the net's velocity v(x_t, t) on the straight path's x1 - x0.

``train_step`` ends after ``backward()``: the core steps the optimizer (``apply_update``, which clips the
gradients' norm first). Noise, times and OT pairings come from the trainer's own seeded generator, saved in
its state, so a resumed run draws what an uninterrupted one would. The learning rate follows the config's
warm-up and cosine (``genframe.RateSchedule``), by the steps taken, which are saved too.
"""

from __future__ import annotations

import torch

from genframe import (
    DivergenceError,
    RateSchedule,
    Trainer,
    draw_path_times,
    ot_pairing,
    restore_generator,
    straight_path,
)

VALIDATION_EXAMPLES = 1000


class FlowTrainer(Trainer):
    def __init__(self, model: torch.nn.Module, config, device: torch.device, seed: int = 0) -> None:
        self.model, self.device, self.config = model, device, config.trainer
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.config.lr)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        c = self.config
        self.schedule = RateSchedule(self.optimizer, c.lr, c.lr_min, c.lr_decay_steps, c.warmup_steps)

    def scale_learning_rate(self, factor: float) -> list[float]:
        """After a divergence: every later step's rate (schedule included) is multiplied by ``factor``."""
        return self.schedule.scale(factor)

    def set_run_length(self, total_steps: int) -> None:
        """A learning-rate decay written as a share of the run follows the run's length."""
        self.schedule.set_run_length(total_steps)

    def loss(self, x1: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
        if self.config.coupling == "ot":
            x0 = ot_pairing(x0, x1, generator)
        t = draw_path_times(len(x1), self.config.time_sampling, generator, x1.device)
        xt, target = straight_path(x0, x1, t, self.config.sigma_min, generator)
        return (self.model(xt, t) - target).square().mean()

    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor | float]:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(batch, self.generator)
        if not torch.isfinite(loss):
            raise DivergenceError(f"flow-matching loss is {float(loss)}")
        loss.backward()
        metrics = {"loss": loss.detach()}
        if self.schedule.varies:  # a constant rate is in the config already
            metrics["lr"] = self.schedule.rate()
        return metrics

    def apply_update(self) -> None:
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.schedule.apply()
        self.optimizer.step()
        self.schedule.advance()

    def validate(self, dataset) -> dict[str, float]:
        """The loss on up to 1000 held-out examples, with draws of its own (training's stream is left alone)."""
        generator = torch.Generator(device=self.device).manual_seed(0)
        count = min(len(dataset), VALIDATION_EXAMPLES)
        self.model.eval()
        with torch.no_grad():
            loss = self.loss(dataset.get_batch(torch.arange(count, device=self.device)), generator)
        return {"loss": float(loss)}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), **self.schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        restore_generator(self.generator, state["generator"])
        self.schedule.load_state_dict(state)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def work_per_step(self, batch_size: int) -> tuple[str, float]:
        return ("img-steps", float(batch_size))
