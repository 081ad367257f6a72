"""Learning-rate schedules a trainer works out afresh each step from the steps it has taken.

Worked out from the step count rather than kept in a torch scheduler, the rate survives a resume with the
trainer's step count alone, and composes with other factors (a divergence rollback's cut).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

from genframe.util.shares import steps_of

if TYPE_CHECKING:  # a config's validator imports this module: it must not import torch (`genframe plugins`)
    import torch


def cosine_rate(step: int, lr: float, lr_min: float, decay_steps: int | None, warmup_steps: int = 0) -> float:
    """The learning rate at ``step``: a linear warm-up from ``lr / warmup_steps`` to ``lr`` over the first
    ``warmup_steps`` steps, then a half cosine from ``lr`` down to ``lr_min`` that ends ``decay_steps`` steps
    after the start of training, then flat at ``lr_min``. ``decay_steps=None``: ``lr`` after the warm-up."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if decay_steps is None:
        return lr
    span = max(decay_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0), span) / span
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def rate_schedule_problem(lr: float, lr_min: float, decay_steps: int | str | None,
                          warmup_steps: int = 0) -> str | None:
    """Why these settings (named as ``trainer.*``) make no schedule, or None: for a config's validator. A
    decay given as a share of the run (``"100%"``) is checked against the warm-up when the run's length is known
    (:meth:`RateSchedule.set_run_length`)."""
    if decay_steps is not None and lr_min >= lr:
        return (f"trainer.lr_min={lr_min:g} is not below trainer.lr={lr:g}; a decay needs lr_min < lr (or drop "
                "trainer.lr_decay_steps for a constant rate)")
    if isinstance(decay_steps, int) and warmup_steps >= decay_steps:
        return (f"trainer.warmup_steps={warmup_steps} is not below trainer.lr_decay_steps={decay_steps}; the decay "
                "ends that many steps into training, after the warm-up")
    return None


class RateSchedule:
    """A trainer's learning rate with its own state: :func:`cosine_rate` at the steps taken, times the factor
    of every divergence rollback so far. A trainer calls :meth:`apply` before each optimizer step and
    :meth:`advance` after it, hands :meth:`scale` to the core's ``scale_learning_rate``, passes the run's length
    to :meth:`set_run_length` (from its ``Trainer.set_run_length``), and saves :meth:`state_dict` with its own
    state, so a resume continues the schedule and keeps the cuts. ``decay_steps`` may be a share of the run
    (``"100%"``): until the run's length is known the rate is ``lr`` after the warm-up."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, lr_min: float = 0.0,
                 decay_steps: int | str | None = None, warmup_steps: int = 0) -> None:
        self.optimizer, self.lr, self.lr_min = optimizer, lr, lr_min
        self.decay_steps, self.warmup_steps = decay_steps, warmup_steps
        self.run_length: int | None = None
        self.steps_taken, self.factor = 0, 1.0

    def set_run_length(self, total_steps: int) -> None:
        """The run's length in steps, which a decay given as a share of the run follows from now on."""
        self.run_length = total_steps
        decay = steps_of(self.decay_steps, total_steps)
        if isinstance(self.decay_steps, str) and decay is not None and decay <= self.warmup_steps:
            warnings.warn(f"genframe: trainer.lr_decay_steps={self.decay_steps!r} of this {total_steps}-step run is "
                          f"{decay} steps, no longer than trainer.warmup_steps={self.warmup_steps}: the rate falls "
                          f"to lr_min={self.lr_min:g} right after the warm-up; give a larger share or a shorter "
                          "warm-up", UserWarning, stacklevel=2)

    @property
    def varies(self) -> bool:
        """Whether the rate differs from the configured ``lr`` at some step (worth logging as ``lr``)."""
        return self.warmup_steps > 0 or self.decay_steps is not None or self.factor != 1.0

    def rate(self) -> float:
        """The rate of the next step."""
        decay = steps_of(self.decay_steps, self.run_length)
        if decay is not None and decay <= self.warmup_steps:  # a short run's share: the decay follows the warm-up
            decay = self.warmup_steps + 1
        return cosine_rate(self.steps_taken, self.lr, self.lr_min, decay, self.warmup_steps) * self.factor

    def apply(self) -> float:
        """Set the optimizer's rate to the next step's; returns it."""
        rate = self.rate()
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        return rate

    def advance(self) -> None:
        """One optimizer step was taken."""
        self.steps_taken += 1

    def scale(self, factor: float) -> list[float]:
        """After a divergence: every later rate (schedule included) is multiplied by ``factor``; the new rates."""
        self.factor *= factor
        rate = self.apply()
        return [rate for _ in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Flat keys, to merge into a trainer's state."""
        return {"steps_taken": self.steps_taken, "lr_scale": self.factor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Reads the keys :meth:`state_dict` wrote (absent: a fresh schedule) and sets the optimizer's rate."""
        self.steps_taken, self.factor = state.get("steps_taken", 0), state.get("lr_scale", 1.0)
        self.apply()
