"""Keep-best: write ``checkpoints/best.pt`` whenever an evaluation beats every earlier one, so a run whose
quality later falls (a model can collapse) still holds its best weights."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from genframe.contracts.context import RunContext
from genframe.contracts.listeners import Callback, Control
from genframe.util.metric_names import renamed_metrics

BEST_NAME = "best.pt"


class KeepBestSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    metric: str = Field("eval/fd", description="The evaluation metric that decides which weights are best.")
    mode: Literal["min", "max"] = Field("min", description="min: lower is better; max: higher is better.")

    @field_validator("metric")
    @classmethod
    def _renamed(cls, metric: str) -> str:
        """``eval/coverage`` of genframe 0.1 is ``eval/class_spread`` now (read with a deprecation notice)."""
        return next(iter(renamed_metrics({metric: None}, "callbacks.keep_best.metric")))


class KeepBest(Callback):
    name = "keep_best"
    settings_class = KeepBestSettings

    def __init__(self, settings: KeepBestSettings, run: RunContext) -> None:
        super().__init__(settings, run)
        self.best: float | None = None
        self.step: int | None = None

    def on_evaluation(self, run: RunContext, control: Control, metrics: dict[str, float]) -> None:
        value = metrics.get(self.settings.metric)
        if value is None:
            return
        better = self.best is None or (value < self.best if self.settings.mode == "min" else value > self.best)
        if better:
            self.best, self.step = value, run.step
            control.save_copy(BEST_NAME)

    def keep_across_rollback(self, before: dict[str, Any]) -> None:
        self.best, self.step = before["best"], before["step"]  # best.pt on disk is not rolled back

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.step = state.get("best"), state.get("step")
