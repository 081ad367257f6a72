"""The run's listeners: its callbacks (which act) and loggers (which watch), called at every point in
one order, failures isolated in one place, callbacks' requests agreed across processes.

Order: the recipe's ``default_callbacks`` (less ``callbacks.disable``), then ``callbacks.use``, then the
loggers in ``logging.loggers`` order (main process only) and the plugins still on the old lifecycle
hooks. A failure is named in one line. A callback that acts stops the run (the loop writes a checkpoint
first); a watcher (an ``observer`` callback, any listener at a watch-only point) is dropped with a
warning; a logger is dropped with a warning, or stops the run under ``GENFRAME_STRICT_PLUGINS=1``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

from genframe.contracts.context import RunContext
from genframe.contracts.errors import CallbackError, PluginError, RunInterrupted
from genframe.contracts.listeners import WATCH_ONLY, Callback, Control, Listener
from genframe.contracts.mistakes import check_listener
from genframe.loggers.attach import Watcher
from genframe.loggers.legacy import HOOK_OF_POINT
from genframe.plugins.host import PluginWarning, strict_plugins
from genframe.util.deprecation import deprecate
from genframe.util.text import describe, where

# What the loop acts on at each point where callbacks may act (None: every other such point).
ACTED_ON = {"on_before_update": {"veto", "stop"}, "on_before_checkpoint": {"skip"},
            "on_divergence": {"rollback", "finish"}, None: {"stop", "rollback", "finish", "copy", "report"}}


class CallbackWarning(UserWarning):
    """A watching callback failed and was dropped; the run goes on."""


def failure(callback: Callback, point: str, exc: BaseException) -> str:
    """One line: which callback failed, where in the run, why, and where in the callback's own code."""
    return f"callback {callback.name!r} failed in {point}: {describe(exc)}{where(exc, type(callback).__module__)}"


@functools.cache
def old_signatures(cls: type) -> frozenset[str]:
    """The points ``cls`` overrides with genframe 0.1's signature, without ``control``:
    ``on_checkpoint(run, path)``, ``on_run_end(run, status)``, ``on_rollback(run, before)``."""
    old = set()
    for point in ("on_checkpoint", "on_run_end", "on_rollback"):
        method = getattr(cls, point)
        if method is not getattr(Listener, point) and len(inspect.signature(method).parameters) == 3:
            old.add(point)
    if old:
        deprecate(f"callback {cls.__qualname__} overrides {', '.join(sorted(old))} without control", since="0.2",
                  until="0.4", instead="take (run, control, ...) like every point; on_rollback's `before` state "
                  "goes to keep_across_rollback(before) (docs/writing-plugins.md)", stacklevel=5)
    return frozenset(old)


def call_point(listener: Listener, point: str, run: RunContext, control: Control, args: tuple[Any, ...]) -> None:
    if point in old_signatures(type(listener)):
        if point != "on_rollback":  # the old on_rollback was about state: keep_across_rollback's call
            getattr(listener, point)(run, *args)
        return
    getattr(listener, point)(run, control, *args)


class Listeners:
    """The built callbacks and the opened loggers of one run."""

    def __init__(self, chosen: list[tuple[str, type[Callback], Any]], run: RunContext,
                 loggers: list[Watcher] | None = None) -> None:
        """Build the callbacks ``chosen_callbacks`` chose, for ``run``; ``loggers`` from ``open_loggers``."""
        self.callbacks = [cls(settings, run) for _, cls, settings in chosen]
        for callback in self.callbacks:
            check_listener(type(callback), "callback")
        self.loggers: list[Watcher] = list(loggers or [])

    def call(self, point: str, run: RunContext, *args: Any) -> Control:
        """Call ``point`` on every callback, then every logger; returns the callbacks' requests. A failure
        that must stop the run is recorded as ``control.failure`` (raised by the loop once every process
        agreed on it, so that under torchrun no process is left waiting in a collective)."""
        watching = point in WATCH_ONLY
        control = Control(watching=watching)
        for callback in list(self.callbacks):
            try:
                call_point(callback, point, run, control, args)
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
        if self.loggers:
            watch = Control(watching=True)
            for watcher in list(self.loggers):
                hear = getattr(watcher.listener, point, None)  # a duck-typed logger may hear only some points
                try:
                    if hear is not None:
                        hear(run, watch, *args)
                except RunInterrupted:
                    raise
                except Exception as exc:
                    self.drop(watcher, point, exc)
        return control

    def drop(self, watcher: Watcher, point: str, exc: Exception) -> None:
        """A logger raised: it is switched off for the rest of the run, with one warning (strict: an error)."""
        self.loggers.remove(watcher)
        heard = HOOK_OF_POINT.get(point, point) if watcher.old_hooks else point
        text = f"{watcher.label} from {watcher.package} raised in {heard}: {describe(exc)}{where(exc, watcher.module)}"
        if strict_plugins():
            raise PluginError(text) from exc
        warnings.warn(f"genframe: {text}; it is switched off for the rest of the run (set GENFRAME_STRICT_PLUGINS=1 "
                      "to make this an error)", PluginWarning, stacklevel=3)

    def decide(self, point: str, run: RunContext, world: Any, *args: Any) -> Control:
        """Call ``point`` and agree the requests across processes; a callback's failure, or a request the
        loop does not act on at ``point``, raises :class:`CallbackError` on every process at once."""
        control = self.agree(self.call(point, run, *args), world, run.device)
        if control.failure is not None:
            raise CallbackError(control.failure)
        ignored = control.requests() - ACTED_ON.get(point, ACTED_ON[None])
        if ignored:
            raise CallbackError(f"a callback asked to {' and '.join(sorted(ignored))} in {point}, where the loop "
                                "does not act on it (docs/writing-plugins.md: the control surface)")
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
        from genframe.training import distributed  # torch.distributed, only once a run has callbacks to agree on

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
                if "on_rollback" in old_signatures(type(callback)):  # 0.1: on_rollback(run, before)
                    callback.on_rollback(run, before.get(callback.name, {}))
                else:
                    callback.keep_across_rollback(before.get(callback.name, {}))
            except Exception as exc:
                raise CallbackError(failure(callback, "on_rollback", exc)) from exc
