"""The optimizer-step boundary, which is the core's: after ``train_step`` callbacks see the step's signals
and may veto, then the core calls ``Trainer.apply_update`` or ``discard_update``. A trainer of genframe 0.1
stepped itself inside ``train_step``; that is told apart on the first step by watching the optimizer, so
an old trainer is never stepped twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from genframe.contracts.components import Trainer
from genframe.contracts.errors import DivergenceError
from genframe.util.deprecation import deprecate


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


class UpdateBoundary:
    """One trainer's updates over a run: who steps it, and the step after the callbacks have looked."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.steps_itself: bool | None = None  # decided on the first step that runs through

    def watch(self) -> Any:
        """Around ``train_step``: notices an optimizer step inside it, until that is decided."""
        return optimizer_steps(self.trainer, watch=self.steps_itself is None)

    def decide(self, stepped: bool, diverged: bool) -> None:
        if self.steps_itself is not None or diverged:
            return
        self.steps_itself = stepped or not owns_update(self.trainer)
        if self.steps_itself:
            deprecate(f"{type(self.trainer).__qualname__}.train_step steps the optimizer itself", since="0.2",
                      until="0.4", instead="end train_step after backward(), name divergence signals in "
                      "update_signals and override apply_update() if self.optimizer.step() is not all it takes",
                      stacklevel=4)

    def finish(self, metrics: dict[str, Any], diverged: DivergenceError | None,
               before_update: Callable[[dict[str, Any]], None]) -> DivergenceError | None:
        """Show the step's ``update_signals`` to ``before_update`` (the callbacks, which may veto by raising
        DivergenceError), then apply the update, or discard it on a divergence or veto; the divergence, if any."""
        if self.steps_itself or not owns_update(self.trainer):
            return diverged
        try:
            if diverged is None:
                before_update({name: metrics[name] for name in self.trainer.update_signals})
                self.trainer.apply_update()
        except DivergenceError as veto:
            diverged = veto
        if diverged is not None:
            self.trainer.discard_update()
        return diverged
