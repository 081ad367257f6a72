"""The run's callbacks: chosen from the config, built, called in order, their requests agreed.

Order: the recipe's ``default_callbacks`` (less ``callbacks.disable``), then ``callbacks.use``. A
callback that raises is named in one line: a watcher (``observer = True``) is dropped with a warning
and the run goes on; any other stops the run (the loop writes a checkpoint first).
"""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import ValidationError

from genframe.callbacks import Callback, Control
from genframe.config import RecipeConfig, format_validation_error
from genframe.context import RunContext
from genframe.errors import CallbackError, ConfigError, RunInterrupted, UnknownComponentError
from genframe.pluginfaults import describe, where


class CallbackWarning(UserWarning):
    """A watching callback failed and was dropped; the run goes on."""


def chosen_callbacks(config: RecipeConfig, registry: Any) -> list[tuple[str, type[Callback], Any]]:
    """(name, class, validated settings) of every callback the config turns on, in call order.

    Also writes each one's full settings back into ``config.callbacks``, so config.json and
    checkpoints hold every value used, defaults included.
    """
    section, defaults = config.callbacks, type(config).default_callbacks
    unknown = [name for name in section.disable if name not in defaults]
    if unknown:
        raise ConfigError(f"invalid config: callbacks.disable: {', '.join(map(repr, unknown))} is not a default "
                          f"callback of this recipe (its defaults: {', '.join(defaults) or 'none'})")
    names = [n for n in defaults if n not in section.disable] + [n for n in section.use if n not in defaults]
    tables = dict(section.model_extra or {})
    idle = [name for name in tables if name not in names]
    if idle:
        raise ConfigError(f"invalid config: callbacks.{idle[0]}: settings for a callback that is not on; add "
                          f"{idle[0]!r} to callbacks.use (or remove it from callbacks.disable), or drop the table")
    chosen = []
    for name in names:
        try:
            cls = registry.get("callback", name)
        except UnknownComponentError as exc:
            raise ConfigError(f"invalid config: callbacks.use: {exc}") from None
        given = tables.get(name) or {}
        table = {**type(config).callback_settings.get(name, {}), **given} if isinstance(given, dict) else given
        if not isinstance(table, dict):
            raise ConfigError(f"invalid config: callbacks.{name}: should be a table of settings, got {table!r}")
        try:
            settings = cls.settings_class.model_validate(table)
        except ValidationError as exc:
            detail = format_validation_error(exc, cls.settings_class, prefix=("callbacks", name))
            raise ConfigError(f"invalid config: {detail}") from None
        section.model_extra[name] = settings.model_dump(mode="json")
        chosen.append((name, cls, settings))
    for name, cls, settings in chosen:  # every table is resolved: a check may look at another callback's
        problem = cls.check_settings(settings, config)
        if problem:
            raise ConfigError(f"invalid config: callbacks.{name}: {problem}")
    suppliers = [name for name, cls, _ in chosen if cls.sampling_model is not Callback.sampling_model]
    if len(suppliers) > 1:  # only the first would be sampled: the others' weights kept for nothing
        raise ConfigError(f"invalid config: callbacks {' and '.join(map(repr, suppliers))} each supply the "
                          "weights to sample and evaluate with, and a run samples with one; choose one of them")
    return chosen


def failure(callback: Callback, point: str, exc: BaseException) -> str:
    """One line: which callback failed, where in the run, why, and where in the callback's own code."""
    return f"callback {callback.name!r} failed in {point}: {describe(exc)}{where(exc, type(callback).__module__)}"


class CallbackList:
    """The built callbacks of one run, and the agreement of their requests across processes."""

    def __init__(self, chosen: list[tuple[str, type[Callback], Any]], run: RunContext) -> None:
        """Build the callbacks ``chosen_callbacks`` chose, for ``run``."""
        self.callbacks = [cls(settings, run) for _, cls, settings in chosen]

    def call(self, point: str, run: RunContext, *args: Any) -> Control:
        """Call ``point`` on every callback; returns the requests they made. A failure that must stop the
        run is recorded as ``control.failure`` (raised by the loop once every process agreed on it, so
        that under torchrun no process is left waiting in a collective); at the points where a callback
        cannot act (``on_checkpoint``, ``on_run_end``) any failure only drops the callback, with a warning."""
        control = Control()
        watching = point in ("on_checkpoint", "on_run_end")
        for callback in list(self.callbacks):
            try:
                getattr(callback, point)(run, *args) if watching else getattr(callback, point)(run, control, *args)
            except RunInterrupted:  # a stop signal that landed while a callback ran (the final evaluation)
                raise
            except Exception as exc:
                reason = failure(callback, point, exc)
                if not (callback.observer or watching):
                    control.failure = control.failure or reason
                    break
                warnings.warn(f"genframe: {reason}; it is dropped for the rest of the run", CallbackWarning,
                              stacklevel=2)
                self.callbacks.remove(callback)
        return control

    def agree(self, control: Control, world: Any, device: Any) -> Control:
        """Under torchrun, a request any process made is acted on by all (decisions are made once); the
        evaluations reported are the main process's (it alone evaluates), handed to every process, so that
        all of them call ``on_evaluation`` and agree on what it asks."""
        if not world.active:
            return control
        flags = [control.failure is not None, control.stop_reason is not None, control.veto_reason is not None,
                 control.rollback_reason is not None, control.finish_reason is not None, control.skip,
                 bool(control.reports), bool(control.copies)]
        from genframe import distributed  # torch.distributed, only once a run has callbacks to agree on

        failed, stop, veto, rollback, finish, skip, reports, copies = distributed.any_rank(flags, device)
        if reports:
            control.reports = distributed.from_main(control.reports, world)
        if copies:  # every process then takes part in the checkpoint a copy may bring (see TrainingLoop.act)
            control.copies = distributed.from_main(control.copies, world)
        elsewhere = "requested on another process"
        control.failure = control.failure or ("a callback failed on another process" if failed else None)
        control.stop_reason = control.stop_reason or (elsewhere if stop else None)
        control.veto_reason = control.veto_reason or (elsewhere if veto else None)
        control.rollback_reason = control.rollback_reason or (elsewhere if rollback else None)
        if rollback:  # every replica must keep the same learning rate: the main process's factor
            control.rollback_lr_factor = distributed.from_main(control.rollback_lr_factor, world)
        control.finish_reason = control.finish_reason or (elsewhere if finish else None)
        control.skip = skip
        return control

    def sampling_model(self, default: Any = None) -> Any:
        """The sampling model a callback supplies (at most one does), else ``default`` (e.g. the trained net)."""
        for callback in self.callbacks:
            model = callback.sampling_model()
            if model is not None:
                return model
        return default

    def state_dict(self) -> dict[str, Any]:
        return {callback.name: callback.state_dict() for callback in self.callbacks}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback.load_state_dict(states.get(callback.name, {}))

    def rolled_back(self, run: RunContext, before: dict[str, Any], states: dict[str, Any]) -> None:
        """After a rollback: states from the checkpoint, then each callback keeps what outlives a rollback."""
        for callback in self.callbacks:
            try:
                callback.load_state_dict(states.get(callback.name, {}))
                callback.on_rollback(run, before.get(callback.name, {}))
            except Exception as exc:
                raise CallbackError(failure(callback, "on_rollback", exc)) from exc
