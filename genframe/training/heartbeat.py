"""Under torchrun, notice a stalled, dead or failed process within a bounded time, and stop the others.

Each process runs a daemon thread that beats (a counter in torchrun's key-value store) and watches
its neighbour in a ring (rank r watches r + 1: one peer each, so the store's load does not grow
with the world) and the run's ``failed`` key. A neighbour whose counter has not moved for
``trainer.peer_timeout`` seconds (this process's monotonic clock: no clock skew between machines;
``trainer.first_step_timeout`` until this process's first step is done, when processes build kernels,
read data and meet in their first collectives at their own pace) is stalled or dead: the watcher announces it in ``failed``, and every process that sees ``failed``
prints one line and leaves at once (``os._exit``: its main thread may be stuck inside a collective
that will never complete). A process whose run fails in a way the others do not share (rank 0
cannot write its checkpoint) announces it the same way before it leaves; one whose collective broke
because a peer died (its connections closed at once) names the peer whose beat stopped.

Being a thread, the heartbeat goes on beating while rank 0 alone evaluates or draws pictures and the
others wait for it in a collective: long work is not a stall. The store is torchrun's agent's
(``TORCHELASTIC_USE_AGENT_STORE``): it lives in the launcher, not in rank 0, so it still answers
when rank 0 is stopped; where rank 0 hosts it (a plain ``env://`` launch), a store that stops
answering is reported as rank 0 not answering.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist

from genframe.contracts.errors import CallbackError, DivergenceError, GenframeError, RunError, RunInterrupted
from genframe.training.checkpoint import CHECKPOINT_DIR, LAST_NAME
from genframe.training.distributed import World, launch_id
from genframe.util.text import one_line

FAILED = "failed"
# Failures every process raises at the same point (decided together in a collective): each one
# leaves on its own with its own message, so none is announced.
SHARED_FAILURES = (CallbackError, DivergenceError, RunInterrupted, KeyboardInterrupt)

# Seconds a watch that saw ``failed`` leaves this process's main thread to stop it and say why itself.
GRACE = 0.2

_current: Heartbeat | None = None


def current() -> Heartbeat | None:
    """The heartbeat of this process's running torchrun training, if any (for tests and probes)."""
    return _current


def resume_hint(run_dir: Path, recipe: str) -> str:
    """What the user can do after the run stopped: resume from the last checkpoint, if there is one."""
    path = Path(run_dir) / CHECKPOINT_DIR / LAST_NAME
    if path.is_file():
        return f"The last checkpoint {path} is resumable: genframe run {recipe} --resume {run_dir}"
    return f"No checkpoint was written yet: start the run again with --run-dir {run_dir}"


def describe(error: BaseException) -> str:
    text = str(error) if isinstance(error, GenframeError) else f"{type(error).__name__}: {error}"
    return one_line(text)[:300]


def _ignore_sigterm() -> None:
    """This process is leaving with an error: as soon as another process exits, torchrun sends it
    SIGTERM, which would cut it short before it says why. An ignored signal is dropped (not kept
    pending), so this holds until the process exits, as it is about to."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to protect there
        pass


class Heartbeat:
    """One process's beat and watch; ``start()`` once the process group is up, ``stop()`` on the way out."""

    def __init__(self, world: World, timeout: float, run_dir: Path, recipe: str,
                 on_leave: Callable[[str], None] | None = None, first_step_timeout: float | None = None) -> None:
        self.world, self.timeout, self.run_dir, self.recipe = world, float(timeout), Path(run_dir), recipe
        self.first_step_timeout = max(self.timeout, float(first_step_timeout or timeout))
        self._first_step_done = threading.Event()
        self.on_leave = on_leave  # told why, just before the watch ends this process (rank 0 records it)
        # Several beats per timeout, at most a second apart: a stall is noticed within timeout + interval.
        self.interval = min(1.0, max(0.05, self.timeout / 5))
        self.beats = 0
        self.address = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        self.agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="genframe-heartbeat", daemon=True)
        self.store = self._connect()

    def _connect(self) -> dist.Store:
        # A client of its own, not the process group's: the main thread may be using that one, or be
        # stuck in it. Every store call gives up after ``timeout``, so a store that stopped answering is
        # noticed as surely as a silent peer.
        try:
            store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                                  timeout=datetime.timedelta(seconds=self.timeout), wait_for_workers=False)
        except (KeyError, ValueError, RuntimeError) as exc:
            raise RunError(f"could not reach torchrun's store at {self.address} for the heartbeat: "
                           f"{describe(exc)}") from None
        # One namespace per launch and restart: torchrun's agent keeps its store across restarts.
        return dist.PrefixStore(f"genframe/heartbeat/{launch_id()}/", store)

    def start(self) -> Heartbeat:
        global _current
        self.store.add(f"beat/{self.world.rank}", 1)
        self.beats = 1
        self._thread.start()
        _current = self
        return self

    def first_step_done(self) -> None:
        """From now on a silent peer is stalled after ``timeout``, no longer after the first step's allowance."""
        self._first_step_done.set()

    @property
    def limit(self) -> float:
        """Seconds a peer may go without a beat now."""
        return self.timeout if self._first_step_done.is_set() else self.first_step_timeout

    # --- the watch (its own thread) -----------------------------------------------------------------
    def _watch(self) -> None:
        rank, size = self.world.rank, self.world.world_size
        peer = (rank + 1) % size
        seen, moved_at = None, time.monotonic()
        while not self._stopping.wait(self.interval):
            try:
                self.beats = self.store.add(f"beat/{rank}", 1)
                if self.store.check([FAILED]):
                    reason = self.store.get(FAILED).decode()
                    # A failure that every process meets on its own (a bad setting) may be announced a
                    # moment before this process's main thread raises it: let that thread say it itself.
                    if self._stopping.wait(GRACE):
                        return
                    self._leave(reason)
                count = self.store.add(f"beat/{peer}", 0)
                if count != seen:
                    seen, moved_at = count, time.monotonic()
                elif time.monotonic() - moved_at >= self.limit and not self.store.check([f"left/{peer}"]):
                    before = "" if self._first_step_done.is_set() else " before its first step was done"
                    reason = (f"process rank {peer} of {size} has not answered for {self.limit:g} s{before} "
                              "(stalled or dead)")
                    self._leave(self._announce(reason))
            except Exception as exc:  # the store itself stopped answering (it gives up after ``timeout``)
                if self._stopping.is_set():
                    return
                holder = "torchrun's agent" if self.agent_store else f"process rank 0 of {size}, which holds it,"
                self._leave(f"{holder} at {self.address} has not answered for {self.timeout:g} s "
                            f"(stalled or dead: {describe(exc)[:120]})")

    def _announce(self, reason: str) -> str:
        """Tell every process why the run stops; the first announcement wins (returned)."""
        return self.store.compare_set(FAILED, "", reason).decode()

    def _leave(self, reason: str) -> None:
        try:
            self.store.set(f"left/{self.world.rank}", "1")
        except Exception:  # noqa: BLE001 - leaving anyway; the others notice through their own watch
            pass
        try:
            if self.on_leave is not None:
                self.on_leave(reason)
        except Exception:  # noqa: BLE001 - a record that cannot be written must not keep this process here
            pass
        sys.stdout.flush()
        sys.stderr.write(f"Error: {reason}; stopping. {resume_hint(self.run_dir, self.recipe)}\n")
        sys.stderr.flush()
        os._exit(RunError.exit_code)

    # --- the main thread, leaving -------------------------------------------------------------------
    def stop(self, error: BaseException | None = None) -> str | None:
        """Stop beating and watching (the thread joined). ``error``: this process's run failed with it.

        A failure every process shares needs no word. Otherwise, returns the line that explains it better
        when there is one (a peer announced its failure first, or a collective broke because a peer died:
        its beat stopped); else this failure is announced, and this process waits a few beats for the
        others to leave first, so that each says why before torchrun's SIGTERM for this exit reaches it."""
        global _current
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        _current = None
        try:
            self.store.set(f"left/{self.world.rank}", "1")  # no longer watched: leaving is not a stall
            if error is None or isinstance(error, SHARED_FAILURES):
                return None
            _ignore_sigterm()
            reason = self.store.get(FAILED).decode() if self.store.check([FAILED]) else None
            if reason is None and _from_a_collective(error):
                reason = self._dead_peer()
                reason = reason and self._announce(reason)
            if reason is not None:
                return f"{reason}; stopping. {resume_hint(self.run_dir, self.recipe)}"
            rank, size = self.world.rank, self.world.world_size
            self._announce(f"process rank {rank} of {size} failed: {describe(error)}")
            others = [f"left/{r}" for r in range(size) if r != rank]
            deadline = time.monotonic() + 3 * self.interval + 1
            while not self.store.check(others) and time.monotonic() < deadline:
                time.sleep(0.05)
        except Exception:  # noqa: BLE001 - the store is gone (torchrun is ending): nothing left to tell
            pass
        return None

    def _dead_peer(self) -> str | None:
        """The first peer whose beat does not move over two beats, and that did not leave: it died (a
        dead process's connections close at once, so a collective with it fails before a watch sees it)."""
        size = self.world.world_size
        peers = [r for r in range(size) if r != self.world.rank]
        before = {r: self.store.add(f"beat/{r}", 0) for r in peers}
        time.sleep(2 * self.interval + 0.1)
        for r in peers:
            if self.store.add(f"beat/{r}", 0) == before[r] and not self.store.check([f"left/{r}"]):
                return f"process rank {r} of {size} has died (its beat stopped and a collective with it failed)"
        return None


def _from_a_collective(error: BaseException) -> bool:
    """gloo and NCCL report a peer's closed connection as a RuntimeError naming themselves."""
    text = str(error).lower()
    return isinstance(error, dist.DistError) or (isinstance(error, RuntimeError) and ("gloo" in text or "nccl" in text))
