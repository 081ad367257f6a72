"""The evaluation schedule: sample quality during training, every N epochs, minutes and/or steps.

The samples come from the run's sampling model (e.g. averaged weights); when that is not the trained
net, the trained one is evaluated too (``eval/trained/...``) for comparison. A run that a callback
finished early on its last good checkpoint is evaluated once more there: those weights are its result.
Main process only; the metrics go to the loggers and to every callback's ``on_evaluation``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from genframe.contracts.context import RunContext
from genframe.contracts.errors import NoQualityMetric
from genframe.contracts.listeners import Callback, Control
from genframe.util.shares import StepsOrShare, steps_of

EVAL_STREAM = 5_000  # + step: every evaluation its own reproducible samples


class EvaluationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    every_epochs: PositiveInt | None = Field(None, description="Evaluate sample quality every N epochs.")
    every_minutes: PositiveFloat | None = Field(None, description="... and/or every N minutes of training.")
    every_steps: StepsOrShare | None = Field(
        None, description="... and/or every N optimizer steps, or every share of the run ('20%'): a schedule that "
        "does not depend on the machine.")
    n: PositiveInt = Field(1000, description="Samples per evaluation.")
    steps: PositiveInt | None = Field(None, description="Sampler steps (default: the recipe's generation steps).")


class Evaluation(Callback):
    name = "evaluation"
    settings_class = EvaluationSettings

    def __init__(self, settings: EvaluationSettings, run: RunContext) -> None:
        super().__init__(settings, run)
        self.evaluator = None  # built when first needed: it may train a classifier
        self.no_metric = False  # the data has none (unlabelled images, say): evaluations are skipped
        self.last = time.monotonic()
        if self.scheduled and run.example_shape is not None and run.recipe is not None and run.registry is not None:
            # a training run whose samples the core's metric cannot measure: refused before its first step, not
            # at its first evaluation (every process alike: each builds its callbacks before the first step)
            from genframe.using.evaluate import check_measurable

            check_measurable(run.registry, run.config.data, run.recipe, run.example_shape, run.config,
                             instead=", or schedule no evaluations (callbacks.evaluation every_epochs, "
                                     "every_minutes, every_steps)")

    @property
    def scheduled(self) -> bool:
        s = self.settings
        return bool(s.every_epochs or s.every_minutes or s.every_steps)

    def on_run_start(self, run: RunContext, control: Control) -> None:
        self.last = time.monotonic()

    def on_step_end(self, run: RunContext, control: Control) -> None:
        s = self.settings
        by_epoch = run.end_of_epoch and s.every_epochs and (run.epoch + 1) % s.every_epochs == 0
        by_time = s.every_minutes and time.monotonic() - self.last >= s.every_minutes * 60
        every = steps_of(s.every_steps, run.planned_steps)
        by_step = every and run.step % every == 0
        if run.is_main and (by_epoch or by_time or by_step):
            self.report(run, control)

    def on_train_end(self, run: RunContext, control: Control) -> None:
        if run.is_main and run.finished_early and self.scheduled:
            self.report(run, control)

    def report(self, run: RunContext, control: Control) -> None:
        metrics = self.evaluate(run)
        if metrics:  # none when the data has no quality metric
            control.report(metrics)

    def evaluate(self, run: RunContext) -> dict[str, Any]:
        import torch  # on use: listing callbacks and printing configs import no torch

        # An evaluation must not move the global random streams (plugins draw from them, and a resumed run
        # restores them from its checkpoint): whatever the metric or the sampler draw stays in here.
        cuda = [run.device.index or 0] if run.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            return self._evaluate(run)

    def _evaluate(self, run: RunContext) -> dict[str, Any]:
        from genframe.config.batches import EVAL_CHUNK
        from genframe.using.evaluate import shared_evaluator
        from genframe.using.generation import generate_in_chunks

        if self.evaluator is None and not self.no_metric:
            try:
                self.evaluator = shared_evaluator(run.registry, run.config.data, run.recipe, run.config)
            except NoQualityMetric as exc:  # unlabelled data, say: said once, then nothing more to measure
                self.no_metric = True
                warnings.warn(f"genframe: evaluations during training are skipped: {exc}; the preview grids still "
                              "show the samples", UserWarning, stacklevel=2)
        if self.no_metric:
            return {}
        models = {"eval": run.sampling_model()}
        if models["eval"] is not run.model:
            models["eval/trained"] = run.model
        metrics: dict[str, Any] = {}
        for prefix, model in models.items():
            samples = generate_in_chunks(run.sampler, model, self.settings.n, self.settings.steps, run.config.seed,
                                         stream=EVAL_STREAM + run.step, device=run.device, chunk=EVAL_CHUNK).images
            metrics.update({f"{prefix}/{k}": v for k, v in self.evaluator(samples).items()})
        metrics["eval/train_minutes"] = run.train_seconds / 60
        metrics["eval/n"] = self.settings.n  # a figure depends on its sample count: records say which
        self.last = time.monotonic()  # time spent evaluating does not count towards the schedule
        return metrics
