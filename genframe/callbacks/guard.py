"""The divergence guard: what to do when a step diverges, and an optional limit on a divergence signal.

A step diverges when the trainer's own checks fail (non-finite values) or when the signal the trainer
supplies (``Trainer.update_signals``; e.g. an energy-based model's gap between chain and data scores)
has been beyond ``limit`` for ``patience`` steps in a row. The guard then rolls back to the last good
checkpoint with the learning rate cut by ``lr_factor``; after ``max_rollbacks`` it stops the run with
an error, or with ``out_of_rollbacks = "finish"`` ends it as completed on the last good checkpoint
(early stopping). While a streak is under way no routine checkpoint is written, so a rollback never
lands on a state that was already going bad.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from genframe.contracts.context import RunContext
from genframe.contracts.listeners import Callback, Control


class GuardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    on_divergence: Literal["rollback", "stop"] = Field(
        "rollback", description="rollback: reload the last good checkpoint with a lower learning rate; stop: end the run.")
    max_rollbacks: int = Field(3, ge=0, description="Rollbacks before giving up.")
    out_of_rollbacks: Literal["stop", "finish"] = Field(
        "stop", description="After max_rollbacks: stop (an error, exit status 3), or finish: end the run as "
        "completed on the last good checkpoint, with its weights as the result.")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="Learning-rate factor applied at each rollback.")
    signal: str | None = Field(None, description="The trainer's divergence signal to watch (default: its first).")
    limit: PositiveFloat | None = Field(
        None, description="A step whose |signal| is beyond this counts towards a divergence; default: no limit.")
    patience: PositiveInt = Field(
        1, description="Steps in a row beyond limit that count as diverged (the steps before still train).")

    @model_validator(mode="after")
    def _consistent(self) -> GuardSettings:
        if self.out_of_rollbacks == "finish" and self.on_divergence == "stop":
            raise ValueError('out_of_rollbacks="finish" acts after the last rollback, and on_divergence="stop" makes '
                             'none; set on_divergence="rollback" (with max_rollbacks=0 to finish at the first '
                             'divergence) or drop out_of_rollbacks')
        if self.patience > 1 and self.limit is None:
            raise ValueError(f"patience={self.patience} has no effect without a limit; set limit or drop patience")
        return self


class DivergenceGuard(Callback):
    name = "divergence_guard"
    settings_class = GuardSettings

    def __init__(self, settings: GuardSettings, run: RunContext) -> None:
        super().__init__(settings, run)
        self.streak = 0  # steps in a row beyond the limit
        self.forgiven = 0  # rollbacks made before the user last resumed a run the guard had stopped

    def on_run_start(self, run: RunContext, control: Control) -> None:
        if run.resumed and run.rollbacks - self.forgiven >= self.settings.max_rollbacks:
            # the guard stopped this run and the user stepped in: its allowance starts afresh. Only then:
            # a run resumed after a crash or Ctrl-C repeats exactly what it would have done
            self.forgiven = run.rollbacks

    def on_before_update(self, run: RunContext, control: Control, signals: dict[str, float]) -> None:
        limit = self.settings.limit
        if limit is None or not signals:
            return
        name = self.settings.signal or next(iter(signals))
        value = float(signals[name])
        self.streak = self.streak + 1 if not abs(value) <= limit else 0
        if self.streak >= self.settings.patience:
            streak, self.streak = self.streak, 0
            in_a_row = f" for {streak} steps in a row" if streak > 1 else ""
            control.veto(f"{name} {value:.4g} beyond callbacks.divergence_guard.limit={limit:g}{in_a_row}")

    def on_before_checkpoint(self, run: RunContext, control: Control) -> None:
        if self.streak > 0:
            control.skip_checkpoint()

    def on_divergence(self, run: RunContext, control: Control, reason: str) -> None:
        allowed, counted = self.settings.max_rollbacks, run.rollbacks - self.forgiven + 1
        if counted > allowed and self.settings.out_of_rollbacks == "finish":
            control.finish(f"out of rollbacks ({counted - 1} of callbacks.divergence_guard.max_rollbacks; "
                           "out_of_rollbacks = finish): its weights are the run's result")
        elif self.settings.on_divergence == "rollback" and counted <= allowed:
            control.rollback(f"rollback {counted}/{allowed}", self.settings.lr_factor)

    def state_dict(self) -> dict[str, Any]:
        return {"streak": self.streak, "forgiven": self.forgiven}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # routine checkpoints hold 0 (they wait for the streak to end); one written on Ctrl-C may not
        self.streak, self.forgiven = state.get("streak", 0), state.get("forgiven", 0)

    def keep_across_rollback(self, before: dict[str, Any]) -> None:
        self.forgiven = before["forgiven"]  # the allowance is about the run, not the checkpoint
