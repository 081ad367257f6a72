"""The ebm plugin's callbacks: the settle gate and the snapshot mixture (both opt-in, used by the fast recipe).

settle_gate: a short-run EBM can collapse as a slow slide of the chain-minus-real score gap (cdiv)
inside the divergence guard's limit; while the running mean of cdiv (about the last 50 steps) is
beyond ``settle``, routine checkpoints wait, so a rollback does not land on a run already sliding.

snapshot_mixture: sample and evaluate with the trained net and its last ``members - 1`` snapshots,
taken every ``every`` steps, each chain following one member (genframe_ebm.mixture says why).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from genframe import Callback, StepsOrShare, steps_of

if TYPE_CHECKING:  # torch comes with the mixture, when a run makes one
    from genframe_ebm.mixture import SnapshotMixture

MEAN_DECAY = 0.98  # the running mean the gate judges: about the last 50 steps, a logged window


class SettleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    settle: PositiveFloat = Field(description="Routine checkpoints wait while |running mean of cdiv| is beyond this.")
    signal: str = Field("cdiv", description="The trainer's divergence signal whose running mean is judged.")


class SettleGate(Callback):
    name = "settle_gate"
    settings_class = SettleSettings

    @classmethod
    def check_settings(cls, settings: SettleSettings, config) -> str | None:
        limit = config.callbacks.table("divergence_guard").get("limit")
        if limit is None or "divergence_guard" in config.callbacks.disable:
            return (f"settle={settings.settle:g} guards the rollback target of callbacks.divergence_guard.limit, "
                    "which is off; set a limit (e.g. 1) or drop settle_gate")
        if settings.settle >= limit:
            return (f"settle={settings.settle:g} is not below callbacks.divergence_guard.limit={limit:g}; a run is "
                    "settled well inside the limit (e.g. settle = limit / 10)")
        return None

    def __init__(self, settings: SettleSettings, run) -> None:
        super().__init__(settings, run)
        self.mean = 0.0

    def on_before_update(self, run, control, signals: dict[str, float]) -> None:
        value = signals.get(self.settings.signal)
        if value is not None and math.isfinite(value):
            self.mean = MEAN_DECAY * self.mean + (1.0 - MEAN_DECAY) * value

    def on_before_checkpoint(self, run, control) -> None:
        if abs(self.mean) > self.settings.settle:
            control.skip_checkpoint()

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state.get("mean", 0.0)  # turned on at a resume: from 0, as at a run's start


class MixtureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    members: int = Field(8, ge=2, description="Nets in the mixture: the trained one and its last members - 1 snapshots.")
    every: StepsOrShare = Field(500, description="Steps between snapshots, or a share of the run ('1.85%').")


class SnapshotMixtureCallback(Callback):
    name = "snapshot_mixture"
    settings_class = MixtureSettings

    def __init__(self, settings: MixtureSettings, run) -> None:
        from genframe_ebm.mixture import SnapshotMixture

        super().__init__(settings, run)
        self.mixture = SnapshotMixture.around(run.model, settings.members)

    def on_after_update(self, run, control, metrics) -> None:
        every = steps_of(self.settings.every, run.planned_steps)
        if every and run.step % every == 0:
            self.mixture.snapshot()

    def sampling_model(self) -> SnapshotMixture:
        return self.mixture

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.mixture.snapshots_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("snapshots", [])
        if len(saved) == len(self.mixture.members) - 1:
            self.mixture.load_snapshots_state(saved)
        else:  # turned on (or resized) at a resume: every snapshot starts from the present weights
            self.mixture.restart()
