"""The optimizer-step boundary, which is the core's: after ``train_step`` callbacks see the step's signals
and may veto, then the core calls ``Trainer.apply_update`` or ``discard_update``. A trainer of genframe 0.1
stepped itself inside ``train_step`` (and may have called ``check_update``): every step is watched, so such
a step is never stepped again and its callbacks never hear ``on_before_update`` twice."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from genframe.contracts.components import Trainer
from genframe.contracts.errors import DivergenceError, PluginError
from genframe.util.deprecation import deprecate
from genframe.util.optimizers import optimizer_steps


def owns_update(trainer: Any) -> bool:
    """Whether the core can step ``trainer``: it overrides ``apply_update`` or has a torch optimizer."""
    import torch

    method = getattr(type(trainer), "apply_update", None)
    overridden = method is not None and method is not Trainer.apply_update
    return overridden or isinstance(getattr(trainer, "optimizer", None), torch.optim.Optimizer)


class UpdateBoundary:
    """One trainer's updates over a run: the step after the callbacks have looked, unless it stepped itself."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.owned = owns_update(trainer)  # the trainer's class and optimizer are fixed for the run
        self.warned = False
        self.checked = False  # the trainer called check_update during this step (genframe 0.1)

    def watch(self) -> AbstractContextManager[Callable[[], bool]]:
        """Around ``train_step``: notices an optimizer step inside it."""
        self.checked = False
        return optimizer_steps(self.trainer)

    def finish(self, metrics: dict[str, Any], diverged: DivergenceError | None, stepped: bool,
               before_update: Callable[[dict[str, Any]], None]) -> DivergenceError | None:
        """Show the step's ``update_signals`` to ``before_update`` (the callbacks, which may veto by raising
        DivergenceError), then apply the update, or discard it on a divergence or veto; the divergence, if any.
        A step that already stepped itself (or has no optimizer the core can step) is left as it is."""
        if stepped or not self.owned:
            if stepped and not self.warned:
                self.warned = True
                deprecate(f"{type(self.trainer).__qualname__}.train_step steps the optimizer itself", since="0.2",
                          until="0.4", instead="end train_step after backward(), name divergence signals in "
                          "update_signals and override apply_update() if self.optimizer.step() is not all it takes",
                          stacklevel=3)
            return diverged
        try:
            if diverged is None:
                if not self.checked:  # a 0.1 trainer that called check_update showed the callbacks already
                    before_update(self.signals(metrics))
                self.trainer.apply_update()
        except DivergenceError as veto:
            diverged = veto
        if diverged is not None:
            self.trainer.discard_update()
        return diverged

    def signals(self, metrics: dict[str, Any]) -> dict[str, Any]:
        names = tuple(getattr(self.trainer, "update_signals", ()))
        missing = [name for name in names if name not in metrics]
        if missing:
            returned = ", ".join(map(repr, metrics)) or "nothing"
            raise PluginError(f"{type(self.trainer).__qualname__}.update_signals names {', '.join(map(repr, missing))}, "
                              f"which train_step did not return (it returned {returned})")
        return {name: metrics[name] for name in names}
