"""Learning-rate schedules a trainer works out afresh each step from the steps it has taken.

Worked out from the step count rather than kept in a torch scheduler, the rate survives a resume with the
trainer's step count alone, and composes with other factors (the EBM's rollback halvings).
"""

from __future__ import annotations

import math


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
