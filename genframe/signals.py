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
        self.received = signum
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
