"""SIGINT/SIGTERM, from the command's start to its end.

- While the command starts (Python imports click and torch): exit at once, one line (``exit_at_once_from_now``).
  Nothing is written yet, and an exception raised there can land inside torch's C++ calling back into
  Python, which aborts the process or loses the signal.
- While a run starts up (``StartUp``: config, data, model, kernels): the first signal is held and the
  training loop acts on it as soon as its own handler is in place, after the first step; a second exits at once.
- During training (``StopSignals``): the first asks the loop to checkpoint and stop after the current step; a
  second exits at once (the last checkpoint is safe: checkpoints are only ever renamed into place). After
  training (``at_once()``: final evaluation, pictures), where there is no step to finish, the first signal
  interrupts at once, as ``RunInterrupted``, so the run ends with 128 + the signal's number.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from genframe.contracts.errors import INTERRUPTED

HANDLED = (signal.SIGINT, signal.SIGTERM)
_first_signal: int | None = None  # the stop signal this process received, if any (for the exit handler)
_held: int | None = None  # a stop signal that arrived while a run was starting up, for its loop to act on


def _say(line: str) -> None:
    sys.stderr.write(f"\n{line}\n")
    sys.stderr.flush()


def flush_output() -> None:
    """Flush stdout and stderr before an ``os._exit``, which skips it; a closed or broken stream is passed over."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _exit_now(signum: int, again: bool) -> None:
    flush_output()
    name = signal.Signals(signum).name
    line = f"genframe: second {name}, exiting now" if again else INTERRUPTED.replace("(SIGINT)", f"({name})")
    os.write(2, f"\n{line}\n".encode())
    os._exit(128 + signum)


def _install(handler) -> dict[int, object]:
    """``handler`` for the stop signals, where Python allows handlers (the main thread); the ones it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in HANDLED}


def _restore(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def stop_if_held() -> None:
    """Long start-up work (a download) calls this between pieces: a held signal interrupts it there."""
    if _held is not None:
        raise KeyboardInterrupt


class StartUp:
    """Context manager for a run's start-up: the first stop signal is held (``StopSignals`` takes it over, so
    the run stops after its first step with a checkpoint), not raised inside whatever was running: torch's
    lazy imports and meta kernels run Python code under C++, where a ``KeyboardInterrupt`` can abort the
    process or be swallowed. A second signal exits at once. A signal held when the block ends with nothing
    having taken it (the run finished meanwhile) is raised as ``KeyboardInterrupt`` there."""

    def __init__(self) -> None:
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        global _held, _first_signal
        if _held is not None:
            _exit_now(signum, again=True)
        _held = _first_signal = signum
        _say(f"genframe: {signal.Signals(signum).name} received while starting up; stopping at the first safe point "
             "(send it again to exit at once)")

    def __enter__(self) -> StartUp:
        global _held
        _held = None
        self._previous = _install(self._handle)
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        global _held
        _restore(self._previous)
        held, _held = _held, None
        if held is not None and exc_type is None:
            raise KeyboardInterrupt


class StopSignals:
    """Context manager recording the first stop signal in ``received``; handlers restored on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.immediate = False
        self._previous: dict[int, object] = {}

    def at_once(self) -> None:
        """From now on a signal interrupts where it lands (the training is saved; what is left can be redone)."""
        self.immediate = True
        if self.received is not None:
            self._interrupt(self.received)

    def _interrupt(self, signum: int) -> None:
        from genframe.contracts.errors import RunInterrupted

        self.immediate = False  # raised once; a second signal exits as during training
        raise RunInterrupted(f"{signal.Signals(signum).name} during the end-of-run work", exit_code=128 + signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # second signal: the user means it
            _exit_now(signum, again=True)
        global _first_signal
        self.received = _first_signal = signum
        if self.immediate:
            self._interrupt(signum)
        _say(f"genframe: {signal.Signals(signum).name} received, stopping after this step "
             "(send it again to exit at once)")

    def __enter__(self) -> StopSignals:
        global _held
        self.received, _held = _held, None  # one that came while the run was starting up
        self._previous = _install(self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        _restore(self._previous)


def exit_at_once_from_now() -> None:
    """A signal from now on ends the process at once with one line and 128 + its number. For the command's
    start (Python importing click and torch: nothing written yet) and for its end, when the interpreter is
    about to tear down (a second Ctrl-C sent just after a stopped run has written its checkpoint lands there,
    and would otherwise print a ``KeyboardInterrupt`` traceback from whichever module is being unloaded)."""

    def exit_now(signum: int, frame: FrameType | None) -> None:
        _exit_now(signum, again=_first_signal is not None)

    _install(exit_now)


def interrupt_from_now() -> None:
    """Python's own handling from now on: SIGINT raises ``KeyboardInterrupt`` where it lands (the command's
    work, whose files are written aside and renamed into place, cleans up on the way out); SIGTERM ends the
    process as by default."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
