"""Keep-best: write ``checkpoints/best.pt`` whenever an evaluation beats every earlier one, so a run whose
quality later falls (a model can collapse) still holds its best weights; and at the run's end, choose what it
samples with by measurement.

The final evaluation measures the weights the run samples with (a callback's moving average or snapshot
mixture) and, where those differ, the trained net alone; ``best.pt`` holds the best earlier evaluation. The
best of the three by the metric is what ``genframe.load`` (and so ``sample``, ``eval``, ``export``) takes from
the run: recorded in the final checkpoint (``extra["sample_with"]``) and said in the run's last lines. A
mixture can be worse than its newest member when the snapshots before it were taken mid-swing (issue 48: 6.38
against 1.68 on a Fashion-MNIST seed).
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from genframe.contracts.context import RunContext
from genframe.contracts.listeners import Callback, Control
from genframe.util.metric_names import renamed_metrics

BEST_NAME = "best.pt"  # beside last.pt; genframe.load follows a run's choice of it (using/load.py)
SAMPLE_WITH = "sample_with"  # RunContext.extra: what the run samples with, once its end chose
NAMES = {"sampling_model": "the weights it samples with", "model": "the trained net alone", BEST_NAME: BEST_NAME}


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
        self.last: dict[str, Any] | None = None  # the latest evaluation: step, figures, the best before it
        self.ending = False  # training is over: the final evaluation, when it comes, chooses

    def on_run_start(self, run: RunContext, control: Control) -> None:
        run.extra.pop(SAMPLE_WITH, None)  # training goes on: the end chooses again

    def on_evaluation(self, run: RunContext, control: Control, metrics: dict[str, float]) -> None:
        value = metrics.get(self.settings.metric)
        if value is None:
            return
        earlier = [self.best, self.step] if self.step is not None and self.step < run.step else None
        self.last = {"step": run.step, "value": value, "earlier": earlier,
                     "trained": metrics.get(self.settings.metric.replace("eval/", "eval/trained/", 1))}
        better = self.best is None or (value < self.best if self.settings.mode == "min" else value > self.best)
        if better:
            self.best, self.step = value, run.step
            control.save_copy(BEST_NAME)
        if self.ending:  # a run that finished early: its final evaluation comes after on_train_end
            self.choose(run)

    def on_train_end(self, run: RunContext, control: Control) -> None:
        self.ending = True
        if self.last is not None and self.last["step"] == run.step:  # the final weights were measured
            self.choose(run)

    def choose(self, run: RunContext) -> None:
        """What the run samples with: the best of its final weights, the net alone and ``best.pt`` (on every
        process alike: the figures reached each one, and the checkpoint that records the choice is collective)."""
        last, metric = self.last, self.settings.metric
        candidates = {"sampling_model": last["value"]}
        if last["trained"] is not None:
            candidates["model"] = last["trained"]
        if last["earlier"] is not None:
            candidates[BEST_NAME] = last["earlier"][0]
        pick = (min if self.settings.mode == "min" else max)(candidates, key=candidates.get)
        best_step = None if last["earlier"] is None else last["earlier"][1]
        run.extra[SAMPLE_WITH] = {"weights": pick, "metric": metric, "candidates": candidates, "best_step": best_step}
        if len(candidates) > 1 and run.is_main:
            name = lambda key: f"{BEST_NAME} (step {best_step})" if key == BEST_NAME else NAMES[key]  # noqa: E731
            others = ", ".join(f"{name(key)} {v:.4g}" for key, v in candidates.items() if key != pick)
            print(f"genframe: the run samples with {name(pick)} ({metric} {candidates[pick]:.4g}; {others})",
                  file=sys.stderr, flush=True)

    def keep_across_rollback(self, before: dict[str, Any]) -> None:
        self.best, self.step = before["best"], before["step"]  # best.pt on disk is not rolled back

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "step": self.step, "last": self.last}  # not ``ending``: a resumed end sets it

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.step, self.last = state.get("best"), state.get("step"), state.get("last")
