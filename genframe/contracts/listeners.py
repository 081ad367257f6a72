"""How code hears a run: one set of points, one signature shape, for callbacks and loggers alike.

A :class:`Listener` has a method per natural point of a run, each called as ``on_POINT(run, control,
...the point's data)``. A :class:`Callback` is a listener that may act and keeps state: a policy chosen
in the config::

    [callbacks]
    use = ["ema"]                 # added to the recipe's default callbacks
    disable = ["keep_best"]       # recipe defaults turned off by name
    [callbacks.ema]               # each callback's own settings table, validated by its settings class
    decay = 0.999

A :class:`Logger` is a listener that watches: named in ``logging.loggers``, it hears the same points and
cannot act (its ``control`` refuses every request), and if it raises it is dropped with one warning while
the run goes on. The core calls callbacks first, in a fixed order (the recipe's defaults as the recipe
lists them, then ``callbacks.use``), then loggers in ``logging.loggers`` order. A callback never talks to
the loop directly: it asks through :class:`Control` (stop, veto this step's update, roll back, finish on
the last good checkpoint, skip a checkpoint, keep a copy, report an evaluation) and the loop carries the
request out at a safe point. Under torchrun the core averages the numbers listeners see across processes
and agrees every request once, so no listener calls collectives itself. What a callback keeps in
``state_dict`` is saved in every checkpoint and loaded on resume and on rollback, so a resumed run
repeats an uninterrupted one bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from genframe.contracts.context import RunContext

if TYPE_CHECKING:  # for type checkers only: the contracts import no torch and no config at run time
    import torch

    from genframe.config.sections import RecipeConfig


class NoSettings(BaseModel):
    """The settings of a callback that has none: an empty table (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


@dataclass
class Control:
    """Requests callbacks make of the loop during one call; the loop reads and clears them."""

    stop_reason: str | None = None
    veto_reason: str | None = None
    rollback_reason: str | None = None
    rollback_lr_factor: float = 1.0
    finish_reason: str | None = None
    skip: bool = False
    copies: list[str] = field(default_factory=list)
    reports: list[dict[str, float]] = field(default_factory=list)
    failure: str | None = None  # set by the core: a callback that acts raised (the run stops)
    watching: bool = False  # a logger's control, or a point where nobody acts: every request raises

    def requests(self) -> set[str]:
        """What was asked: a subset of stop, veto, rollback, finish, skip, copy, report."""
        asked = {"stop": self.stop_reason, "veto": self.veto_reason, "rollback": self.rollback_reason,
                 "finish": self.finish_reason, "skip": self.skip or None, "copy": self.copies or None,
                 "report": self.reports or None}
        return {name for name, value in asked.items() if value is not None}

    def _ask(self, request: str) -> None:
        if self.watching:
            raise RuntimeError(f"asked to {request} at a point where it can only watch (loggers always watch; "
                               "callbacks act only where the point's docs say)")

    def stop(self, reason: str) -> None:
        """End the run after this step, as completed, with a checkpoint (e.g. early stopping)."""
        self._ask("stop")
        self.stop_reason = self.stop_reason or reason

    def veto(self, reason: str) -> None:
        """In ``on_before_update``: refuse this step's optimizer update; the step counts as diverged."""
        self._ask("veto")
        self.veto_reason = self.veto_reason or reason

    def rollback(self, reason: str, lr_factor: float = 1.0) -> None:
        """Go back to the last good checkpoint, multiply the learning rate by ``lr_factor`` and redo the
        steps since with fresh random draws (replaying the draws that went wrong tends to go wrong again)."""
        self._ask("roll back")
        self.rollback_reason, self.rollback_lr_factor = reason, lr_factor

    def finish(self, reason: str) -> None:
        """Go back to the last good checkpoint and end the run there, as completed, with its weights as
        the result (callbacks see ``on_train_end`` with ``run.finished_early`` set, e.g. a final evaluation)."""
        self._ask("finish")
        self.finish_reason = reason

    def skip_checkpoint(self) -> None:
        """In ``on_before_checkpoint``: put off this routine checkpoint (the loop tries again each step):
        the last checkpoint is what a rollback returns to, so it must be a good state."""
        self._ask("skip a checkpoint")
        self.skip = True

    def save_copy(self, name: str) -> None:
        """Write the run's present state as ``checkpoints/NAME`` too (main process), e.g. ``best.pt``."""
        self._ask("save a copy")
        self.copies.append(name)

    def report(self, metrics: dict[str, float]) -> None:
        """Hand an evaluation's metrics to the loggers and to every callback's ``on_evaluation``."""
        self._ask("report")
        self.reports.append(dict(metrics))


class Listener:
    """The run's natural points, in the order they come; override the ones you need. Each is called as
    ``on_POINT(run, control, ...)``: ``run`` is the :class:`RunContext` (``run.step`` is the step the point is
    about), ``control`` the requests this listener may make there (a logger's, and one at a point marked
    *watch*, refuses them all)."""

    def on_run_start(self, run: RunContext, control: Control) -> None:
        """The run started or resumed (state already restored)."""

    def on_before_update(self, run: RunContext, control: Control, signals: dict[str, float]) -> None:
        """A step's gradients are ready and the optimizer has not stepped: ``signals`` are the divergence
        signals the trainer names (``Trainer.update_signals``, averaged over processes). ``control.veto``
        refuses the update."""

    def on_after_update(self, run: RunContext, control: Control, metrics: dict[str, Any]) -> None:
        """The optimizer stepped; ``metrics`` are the step's (averaged over processes under torchrun)."""

    def on_log(self, run: RunContext, control: Control, metrics: dict[str, float],
               images: dict[str, Any]) -> None:
        """*Watch*. Metrics (averaged since the last log, validation's ``val/*``, an evaluation's ``eval/*``;
        on every process) and pictures (main process only) at ``run.step``: image samples as tensors N,C,H,W in [-1, 1],
        anything a recipe draws itself (a scatter of 2-D samples, a GIF) as a file ``Path``."""

    def on_before_checkpoint(self, run: RunContext, control: Control) -> None:
        """A routine checkpoint is due (epoch end or ``trainer.checkpoint_every``); ``control.skip_checkpoint``
        puts it off."""

    def on_checkpoint(self, run: RunContext, control: Control, path: Path) -> None:
        """*Watch*, main process. A checkpoint of ``run.step`` was written atomically to ``path``."""

    def on_step_end(self, run: RunContext, control: Control) -> None:
        """The step is done: logged, validated and checkpointed if due (e.g. evaluate on a schedule)."""

    def on_evaluation(self, run: RunContext, control: Control, metrics: dict[str, float]) -> None:
        """Some callback reported an evaluation (``control.report``)."""

    def on_divergence(self, run: RunContext, control: Control, reason: str) -> None:
        """A step diverged (a trainer's own check or a veto); ``control.rollback``, ``control.finish`` or
        nothing (the run then stops with an error naming the last good checkpoint)."""

    def on_rollback(self, run: RunContext, control: Control, reason: str) -> None:
        """*Watch*. The run went back to its checkpoint of ``run.step`` (a divergence rollback, or a callback
        finishing the run there: ``reason`` says which); what was recorded after that step is void."""

    def on_train_end(self, run: RunContext, control: Control) -> None:
        """Training is over (all steps done, or finished early), before the last checkpoint."""

    def on_run_end(self, run: RunContext, control: Control, status: str) -> None:
        """*Watch*. The run ended with ``status``: completed, interrupted or failed."""


#: every point, in the order a run meets them
POINTS = tuple(name for name in vars(Listener) if name.startswith("on_"))
#: points where no listener acts: everyone gets a control that refuses requests
WATCH_ONLY = frozenset({"on_log", "on_checkpoint", "on_rollback", "on_run_end"})


class Callback(Listener):
    """A listener that acts and keeps state: override the points you need and, for state, the methods below.

    ``settings`` is the validated instance of ``settings_class`` (the callback's table in the config).
    ``run`` is the :class:`RunContext`, with the model, sampler, trainer and recipe; the callback is
    built after them and before a checkpoint is restored.
    """

    #: The name it is registered and chosen by.
    name: ClassVar[str] = ""
    #: A pydantic model of its settings table (unknown keys are errors, with dotted paths).
    settings_class: ClassVar[type[BaseModel]] = NoSettings
    #: True for a callback that only watches (it neither acts nor keeps state): if it raises, it is
    #: disabled with a warning and the run goes on. Any other callback's failure stops the run.
    observer: ClassVar[bool] = False

    @classmethod
    def check_settings(cls, settings: BaseModel, config: RecipeConfig) -> str | None:
        """A problem with ``settings`` that depends on the rest of the resolved config (e.g. on another
        callback's table, ``config.callbacks.table(name)``), as one line; None when there is none.
        Called when the config is resolved, before a run starts."""
        return None

    def __init__(self, settings: BaseModel, run: RunContext) -> None:
        self.settings = settings
        self.run = run

    # --- what the callback supplies ---------------------------------------------------------------
    def sampling_model(self) -> torch.nn.Module | None:
        """The network to sample and evaluate with instead of the trained one (e.g. averaged weights), or
        None. Its weights are kept in checkpoints as ``sampling_model`` for ``genframe sample`` and ``eval``."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What this callback needs to continue exactly (tensors and plain data only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s output; ``{}`` when a resumed run had no state for it (turned on now)."""

    def keep_across_rollback(self, before: dict[str, Any]) -> None:
        """After a rollback reloaded this callback's state from the checkpoint: ``before`` is the state it had
        just before, for what must outlive a rollback (e.g. the record of a best.pt on disk)."""


class Logger(Listener):
    """A listener that watches: it records the run somewhere (a file, a console, a tracking service) and
    cannot act. Named in ``logging.loggers``, it is created on the main process as ``LoggerClass(run)``
    when a run (or a standalone evaluation, ``run.purpose == "eval"``) starts; if it raises, it is dropped
    with one warning and the run goes on (``GENFRAME_STRICT_PLUGINS=1``: the run fails instead)."""

    def __init__(self, run: RunContext) -> None:
        self.run = run

    @classmethod
    def check(cls, config: RecipeConfig) -> None:
        """Raise a one-line ``GenframeError`` if this logger cannot work with ``config`` (its package is not
        installed, a setting is unusable); called before any work starts, so a run never fails later
        for it. Default: nothing to check."""
