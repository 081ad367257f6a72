"""One writer per run directory, and the run's status for tools to read.

``RunDirLock`` holds an exclusive OS lock (``filelock``: ``flock`` on POSIX) on ``RUN/.genframe.lock``
for the life of a training command, so a second ``genframe run`` or ``--resume`` into the same
directory is refused in one line naming the holder; the OS releases the lock when the process dies,
so a killed run never leaves a lock to clear by hand. Readers (``genframe eval``, ``genframe plot``)
take no lock: checkpoints and results are only ever renamed into place.

``RUN/status.json`` says what the run is doing or how it ended: ``running``, ``completed``,
``finished early``, ``interrupted`` or ``failed``, with the step, the process and the time;
``read_status`` reports a ``running`` run whose process is gone as ``interrupted``.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from genframe.contracts.errors import RunError
from genframe.training.checkpoint import CHECKPOINT_DIR, LAST_NAME, PREVIOUS_NAME
from genframe.util.atomic import atomic_write_text

LOCK_NAME = ".genframe.lock"
HOLDER_NAME = ".genframe.holder.json"  # who holds the lock: written on taking it, read only while it is held
NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}  # a file system that cannot lock (some network mounts)
STATUS_NAME = "status.json"
STATUSES = ("running", "completed", "finished early", "interrupted", "failed")
# What a run writes before its first checkpoint: a directory holding only these is a dead end
# (killed or failed before step 0 was saved) and may be started afresh.
RUN_FILES = ("config.json", "metrics.jsonl", STATUS_NAME, "eval.json", "mlflow.db")
RUN_FOLDERS = ("samples", CHECKPOINT_DIR, "wandb", "tensorboard", "mlartifacts")  # the built-in loggers' too


PROCESS_STARTED = time.strftime("%Y-%m-%d %H:%M:%S")  # when this command started (this module loads at start-up)


def holder_record() -> dict[str, Any]:
    """Who this process is, as a second writer is told."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": shlex.join(["genframe", *sys.argv[1:]])
            if Path(sys.argv[0]).name in ("genframe", "__main__.py") else shlex.join(sys.argv),
            "started": PROCESS_STARTED}


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``status.json`` (None if it has none); a ``running`` run whose process is no longer
    alive on this host is reported as ``interrupted`` (killed)."""
    path = Path(run_dir) / STATUS_NAME
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):  # damaged or written by something else: no status to go by
        return None
    if status.get("status") == "running" and status.get("host") == socket.gethostname():
        try:
            os.kill(int(status["pid"]), 0)
        except ProcessLookupError:
            status.update(status="interrupted", message="its process is gone (killed)")
        except (PermissionError, KeyError, ValueError, TypeError):
            pass  # alive under another user, or no pid recorded: leave it as it says
    return status


def write_status(run_dir: Path, status: str, **fields: Any) -> None:
    """Record ``status`` (one of ``STATUSES``) with the holder's identity and ``fields``, atomically."""
    assert status in STATUSES, status
    record = {"status": status, **holder_record(), "updated": time.strftime("%Y-%m-%d %H:%M:%S"), **fields}
    atomic_write_text(run_dir / STATUS_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")


class StatusRecorder:
    """``RUN/status.json`` as a run writes it (main process): what it is doing or how it ended. A full disk
    must not hide the run's own outcome: a failed write is one warning, and the run goes on."""

    def __init__(self, run_dir: Path, is_main: bool) -> None:
        self.run_dir, self.is_main, self.unwritable = run_dir, is_main, False

    def record(self, status: str, **fields: Any) -> None:
        if not self.is_main:
            return
        try:
            write_status(self.run_dir, status, **{k: v for k, v in fields.items() if v is not None})
        except OSError as error:
            if not self.unwritable:
                warnings.warn(f"genframe: could not record the run's status ({error.strerror or error})",
                              UserWarning, stacklevel=3)
            self.unwritable = True


class RunDirLock:
    """The exclusive lock of one run directory, held from ``acquire()`` to ``release()`` (or death)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._lock: Any = None

    def acquire(self) -> None:
        import filelock

        lock = filelock.FileLock(self.run_dir / LOCK_NAME, timeout=0, fallback_to_soft=False)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RunError(f"run directory {self.run_dir} is in use by {self.describe_holder()}; wait for it to "
                           "end (or stop it), or choose another --run-dir") from None
        except OSError as exc:
            if exc.errno not in NO_LOCKS:
                raise RunError(f"cannot write run directory {self.run_dir}: {exc.strerror or exc}; choose another "
                               "--run-dir or fix its permissions") from None
            warnings.warn(f"genframe: cannot lock run directory {self.run_dir} ({exc.strerror}); make sure no other "
                          "process writes to it", UserWarning, stacklevel=2)
            return
        except NotImplementedError as exc:  # a platform filelock cannot lock on
            warnings.warn(f"genframe: cannot lock run directory {self.run_dir} ({exc}); make sure no other "
                          "process writes to it", UserWarning, stacklevel=2)
            return
        self._lock = lock
        try:
            atomic_write_text(self.run_dir / HOLDER_NAME, json.dumps(holder_record()) + "\n")
        except OSError as exc:
            self.release()
            raise RunError(f"cannot write run directory {self.run_dir}: {exc.strerror or exc}; free disk space, "
                           "fix its permissions or choose another --run-dir") from None

    def describe_holder(self) -> str:
        try:
            holder = json.loads((self.run_dir / HOLDER_NAME).read_text(encoding="utf-8"))
            return (f"another genframe process (pid {holder['pid']} on {holder['host']}, since {holder['started']}: "
                    f"{holder['command']})")
        except (OSError, ValueError, KeyError, TypeError):  # not written yet, or damaged: the lock is what counts
            return "another genframe process (starting up)"

    def release(self) -> None:
        if self._lock is not None:
            try:
                (self.run_dir / HOLDER_NAME).unlink(missing_ok=True)
            except OSError:  # a read-only or vanished folder: the lock itself is what must go
                pass
            self._lock.release()
            self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None


def set_aside_damaged_last(run_dir: Path, resume_from: Path) -> Path | None:
    """Resuming from another checkpoint (``previous.pt``, say) while ``last.pt`` is damaged: rename the damaged
    one to ``last.pt.damaged`` first, so the run's next save does not keep it as ``previous.pt`` in place of
    the whole checkpoint it resumed from."""
    from genframe.contracts.errors import CheckpointError
    from genframe.training.checkpoint import load_checkpoint

    last = run_dir / CHECKPOINT_DIR / LAST_NAME
    if not last.is_file() or last.resolve() == resume_from.resolve():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unverified old checkpoint is not the question here
            load_checkpoint(last)
        return None
    except CheckpointError as error:
        damaged = last.with_name(f"{LAST_NAME}.damaged")
        os.replace(last, damaged)
        warnings.warn(f"genframe: {error}; it was renamed to {damaged.name}", UserWarning, stacklevel=2)
        return damaged


def holds_checkpoint(run_dir: Path) -> bool:
    checkpoints = run_dir / CHECKPOINT_DIR
    return (checkpoints / LAST_NAME).is_file() or (checkpoints / PREVIOUS_NAME).is_file()


def clean_leftovers(run_dir: Path) -> list[Path]:
    """Remove the temporary files a killed training command left (``.NAME.*.tmp`` of the files only it
    writes, a staged previous checkpoint). Under the lock, so no live trainer is writing them; readers
    that write into the directory (``genframe eval``, ``sample --out RUN/...``) use other names."""
    removed = []
    owned = [run_dir / CHECKPOINT_DIR / ".*.tmp", run_dir / CHECKPOINT_DIR / ".*.staging",
             *(run_dir / f".{name}.*.tmp" for name in ("config.json", "config.step*.json", STATUS_NAME, HOLDER_NAME))]
    for pattern in owned:
        for path in pattern.parent.glob(pattern.name) if pattern.parent.is_dir() else ():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def start_afresh(run_dir: Path) -> Path | None:
    """Ready ``run_dir`` (locked, no last or previous checkpoint) for a fresh run. A directory holding only
    what a run writes before its first checkpoint is a dead end: its files are moved aside, never
    deleted, to ``abandoned-TIME/`` with a warning; returns that folder. Anything else (files genframe
    did not write, checkpoints such as ``best.pt``, a run that says it completed) is refused."""
    entries = [p for p in run_dir.iterdir() if p.name not in (LOCK_NAME, HOLDER_NAME) and not p.name.startswith("abandoned-")]
    if not entries:
        return None
    foreign = sorted(p.name for p in entries if p.name not in RUN_FILES and p.name not in RUN_FOLDERS
                     and not p.name.startswith("config.step"))
    if foreign or not any((run_dir / name).exists() for name in ("config.json", STATUS_NAME)):
        what = (f"files genframe did not write ({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''})"
                if foreign else "no genframe run record (config.json or status.json)")
        raise RunError(f"run directory {run_dir} already exists and holds {what}; choose a new or empty --run-dir")
    checkpoints = run_dir / CHECKPOINT_DIR
    kept = sorted(p.name for p in checkpoints.glob("*.pt")) if checkpoints.is_dir() else []
    status = (read_status(run_dir) or {}).get("status")
    if kept or status in ("completed", "finished early"):
        what = f"checkpoints ({', '.join(kept)})" if kept else f"the record of a run that {status}"
        hint = f"resume from one with --resume {checkpoints / kept[0]}, or " if kept else ""
        raise RunError(f"run directory {run_dir} holds {what} but no {LAST_NAME}; {hint}choose a new --run-dir")
    aside = run_dir / f"abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir()
    for path in entries:
        os.replace(path, aside / path.name)
    warnings.warn(f"genframe: {run_dir} holds no checkpoint (a run that stopped before its first one); starting it "
                  f"afresh, its files moved to {aside.name}/", UserWarning, stacklevel=2)
    return aside


def remove_if_unused(run_dir: Path) -> None:
    """Remove ``run_dir`` if it holds nothing but the (released) lock's file: a run that failed before
    writing anything leaves no empty directory behind."""
    try:
        if {p.name for p in run_dir.iterdir()} <= {LOCK_NAME, HOLDER_NAME}:
            for name in (LOCK_NAME, HOLDER_NAME):
                (run_dir / name).unlink(missing_ok=True)
            run_dir.rmdir()
    except OSError:  # another command took it meanwhile, or it is gone: leave it
        pass
