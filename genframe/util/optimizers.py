"""Noticing whether an optimizer stepped: how the core tells a trainer of genframe 0.1, which stepped
its optimizer inside ``train_step``, from one that leaves the step to the core (``Trainer.apply_update``),
so that no trainer is ever stepped twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def optimizer_steps(trainer: Any) -> Iterator[Callable[[], bool]]:
    """While the block runs, notice whether ``trainer.optimizer`` (a torch optimizer) steps; yields a
    function that says so. A trainer without one never looks as if it stepped."""
    import torch

    seen: list[bool] = []
    optimizer = getattr(trainer, "optimizer", None)
    handle = None
    if isinstance(optimizer, torch.optim.Optimizer):
        handle = optimizer.register_step_post_hook(lambda *args: seen.append(True))
    try:
        yield lambda: bool(seen)
    finally:
        if handle is not None:
            handle.remove()
