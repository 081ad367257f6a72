"""The run's callbacks: chosen from the config, built, called in order, their requests agreed.

Order: the recipe's ``default_callbacks`` (less ``callbacks.disable``), then ``callbacks.use``. A
callback that raises is named in one line: a watcher (``observer = True``) is dropped with a warning
and the run goes on; any other stops the run (the loop writes a checkpoint first).
"""

from __future__ import annotations

import warnings
from typing import Any

from genframe.contracts.callbacks import Callback, Control
from genframe.contracts.context import RunContext
from genframe.contracts.errors import CallbackError, RunInterrupted
from genframe.util.text import describe, where


class CallbackWarning(UserWarning):
    """A watching callback failed and was dropped; the run goes on."""




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
                callback.on_rollback(run, before.get(callback.name, {}))
            except Exception as exc:
                raise CallbackError(failure(callback, "on_rollback", exc)) from exc
