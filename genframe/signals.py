"""SIGINT/SIGTERM during training: the first asks the loop to checkpoint and stop after the current
step; a second exits at once (the last checkpoint is safe: checkpoints are only ever renamed into place).
After training (``at_once()``: final evaluation, pictures), where there is no step to finish, the first
signal interrupts at once, as ``RunInterrupted``, so the run ends with 128 + the signal's number.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM)
_first_signal: int | None = None  # the stop signal this process received, if any (for the exit handler)


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
        from genframe.errors import RunInterrupted

        self.immediate = False  # raised once; a second signal exits as during training
        raise RunInterrupted(f"{signal.Signals(signum).name} during the end-of-run work", exit_code=128 + signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # second signal: the user means it
            sys.stderr.write(f"\ngenframe: second {signal.Signals(signum).name}, exiting now\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        global _first_signal
        self.received = _first_signal = signum
        if self.immediate:
            self._interrupt(signum)
        sys.stderr.write(f"\ngenframe: {signal.Signals(signum).name} received, stopping after this step "
                         "(send it again to exit at once)\n")
        sys.stderr.flush()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # Python only allows handlers there
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def exit_at_once_from_now() -> None:
    """The command is over and the interpreter is about to tear down: a signal from now on ends the process
    at once with one line, not a ``KeyboardInterrupt`` traceback from whichever module is being unloaded
    (a second Ctrl-C sent just after a stopped run has written its checkpoint lands there)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def exit_now(signum: int, frame: FrameType | None) -> None:
        again = "second " if _first_signal is not None else ""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.write(2, f"\ngenframe: {again}{signal.Signals(signum).name}, exiting now\n".encode())
        os._exit(128 + signum)

    for signum in HANDLED:
        signal.signal(signum, exit_now)
