"""Going back to the last good checkpoint, the loop's one detour: when a step diverges the callbacks
decide (``on_divergence``) to roll back, to finish there, or neither, and the run stops with an error
naming the last good checkpoint. A rollback redoes the steps with a lower learning rate and fresh
random draws; a finish ends the run as completed on those weights. A callback may also ask for
either between steps (``Redirect``).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch

from genframe.contracts.errors import DivergenceError
from genframe.contracts.listeners import Control
from genframe.training.checkpoint import load_checkpoint
from genframe.training.runsetup import rollback_seed

if TYPE_CHECKING:
    from genframe.config.sections import RecipeConfig
    from genframe.contracts.components import Trainer
    from genframe.contracts.context import RunContext
    from genframe.training.budget import Budget
    from genframe.training.distributed import World
    from genframe.training.listeners import Listeners
    from genframe.training.runstate import Parts, RunState


class DivergenceWarning(UserWarning):
    """Training diverged and was rolled back."""


class Redirect(Exception):
    """A callback asked, between steps, to roll back or finish: unwinds the epoch to the run loop."""

    def __init__(self, control: Control) -> None:
        super().__init__(control.rollback_reason or control.finish_reason)
        self.control = control


class Rewinding:
    """The rollback part of ``TrainingLoop`` (it uses the loop's state, callbacks, trainer and checkpoints)."""

    # What it uses of the loop, all of it declared here (the loop sets them in __init__).
    ctx: RunContext
    cfg: RecipeConfig
    loop: dict[str, Any]  # the saved position: epoch, batch, step, rollbacks, train_seconds
    p: Parts
    state: RunState
    trainer: Trainer
    listeners: Listeners
    world: World
    mid_update: bool
    checkpoint_due: bool
    budget: Budget  # trainer.budget_minutes: its timing starts again after a rollback

    if TYPE_CHECKING:  # the loop's own methods it calls
        def call(self, point: str, *args: Any) -> Control: ...
        def hear(self, point: str, *args: Any) -> None: ...
        def checkpoint(self) -> None: ...

    def diverged(self, error: DivergenceError) -> None:
        """Callbacks decide (``on_divergence``): roll back, finish, or (no decision) stop with an error."""
        where = f"{error} at step {self.ctx.step + 1} (epoch {self.loop['epoch'] + 1})"
        self.mid_update = True  # the diverged step's draws are spent: no checkpoint of this state if a callback fails
        control = self.call("on_divergence", where)
        self.mid_update = False
        if control.rollback_reason is None and control.finish_reason is None:
            tried = f" after {self.loop['rollbacks']} rollback(s)" if self.loop["rollbacks"] else ""
            raise DivergenceError(f"training diverged: {where}{tried}; the last good checkpoint is "
                                  f"{self.p.checkpoint_path}; lower trainer.lr (or regularise more), then --resume")
        self.redirect(where, control)

    def redirect(self, where: str, control: Control) -> None:
        """Back to the last good checkpoint; then end there (finish) or redo the steps with fresh draws."""
        rollbacks = self.loop["rollbacks"] + 1
        self.return_to_last_checkpoint()
        if control.finish_reason is not None:
            self.ctx.finished_early = True
            reason = f"{where}; rolled back to step {self.ctx.step} and finished there, {control.finish_reason}"
            warnings.warn(f"genframe: training diverged: {reason}", DivergenceWarning, stacklevel=2)
            self.hear("on_rollback", reason)
            return
        self.loop["rollbacks"] = rollbacks
        # Fresh random draws for the redone steps: replaying the exact draws that diverged tends to
        # diverge again. A new chance, not a cure.
        fresh = rollback_seed(self.cfg.seed, self.world.rank, self.ctx.step, rollbacks)
        torch.manual_seed(fresh)
        self.trainer.reseed(fresh)
        rates = self.trainer.scale_learning_rate(control.rollback_lr_factor)
        reason = f"{where}; rolled back to step {self.ctx.step} with learning rate {rates[0]:.3g}"
        warnings.warn(f"genframe: training diverged: {reason} ({control.rollback_reason})", DivergenceWarning,
                      stacklevel=2)
        self.hear("on_rollback", reason)
        self.checkpoint()  # the lower learning rate and the rollback count survive a crash

    def return_to_last_checkpoint(self) -> None:
        """Reload the last good checkpoint. The training time spent on the steps now thrown away was
        spent: train_minutes keeps counting it; callbacks keep what outlives a rollback."""
        spent, before = self.loop["train_seconds"], self.listeners.state_dict()
        length = {k: v for k, v in self.loop.items() if k.startswith("budget_")}  # a budget's length, once fixed
        saved = load_checkpoint(self.p.checkpoint_path)
        self.state.restore(saved, self.p.steps_per_epoch)
        self.listeners.rolled_back(self.ctx, before, saved.get("callbacks", {}))
        self.loop["train_seconds"] = spent
        self.loop.update(length)
        self.budget.restart()  # still timing: the steps thrown away are not timed
        self.checkpoint_due = False
