"""Who steps the optimizer: the core, after callbacks have seen a step's signals (``Trainer.apply_update``),
or, for a trainer of genframe 0.1, the trainer itself inside ``train_step``. Told apart on the first step
by watching the optimizer, so an old trainer is never stepped twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from genframe.contracts.components import Trainer


def owns_update(trainer: Any) -> bool:
    """Whether the core can step ``trainer``: it overrides ``apply_update`` or has a torch optimizer."""
    overridden = getattr(type(trainer), "apply_update", None) is not Trainer.apply_update
    return overridden or isinstance(getattr(trainer, "optimizer", None), torch.optim.Optimizer)


@contextmanager
def optimizer_steps(trainer: Any, watch: bool = True) -> Iterator[Callable[[], bool]]:
    """While the block runs, notice whether ``trainer.optimizer`` steps; yields a function that says so.
    ``watch=False`` once the loop has decided, so later steps cost nothing."""
    seen: list[bool] = []
    optimizer = getattr(trainer, "optimizer", None)
    handle = None
    if watch and isinstance(optimizer, torch.optim.Optimizer):
        handle = optimizer.register_step_post_hook(lambda *args: seen.append(True))
    try:
        yield lambda: bool(seen)
    finally:
        if handle is not None:
            handle.remove()
