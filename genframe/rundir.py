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

import json
import os
import shlex
import shutil
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from genframe.atomic import atomic_write_text
from genframe.errors import RunError

LOCK_NAME = ".genframe.lock"
HOLDER_NAME = ".genframe.holder.json"  # who holds the lock: read only while it is held, so never stale
STATUS_NAME = "status.json"
STATUSES = ("running", "completed", "finished early", "interrupted", "failed")
# What a run writes before its first checkpoint: a directory holding only these is a dead end
# (killed or failed before step 0 was saved) and may be started afresh.
RUN_FILES = ("config.json", "metrics.jsonl", STATUS_NAME, "eval.json")
RUN_FOLDERS = ("samples", "checkpoints", "wandb")


def holder_record() -> dict[str, Any]:
    """Who this process is, as a second writer is told."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": shlex.join(["genframe", *sys.argv[1:]])
            if Path(sys.argv[0]).name in ("genframe", "__main__.py") else shlex.join(sys.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``status.json`` (None if it has none); a ``running`` run whose process is no longer
    alive on this host is reported as ``interrupted`` (killed)."""
    path = Path(run_dir) / STATUS_NAME
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
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
    previous = read_status(run_dir) or {}
    record["started"] = previous.get("started", record["started"]) if status != "running" else record["started"]
    atomic_write_text(run_dir / STATUS_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")


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
        except (OSError, NotImplementedError) as exc:  # a file system without locks (some network mounts)
            warnings.warn(f"genframe: cannot lock run directory {self.run_dir} ({exc}); make sure no other "
                          "process writes to it", UserWarning, stacklevel=2)
            return
        self._lock = lock
        atomic_write_text(self.run_dir / HOLDER_NAME, json.dumps(holder_record()) + "\n")

    def describe_holder(self) -> str:
        try:
            holder = json.loads((self.run_dir / HOLDER_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "another genframe process (starting up)"
        return (f"another genframe process (pid {holder['pid']} on {holder['host']}, since {holder['started']}: "
                f"{holder['command']})")

    def release(self) -> None:
        if self._lock is not None:
            (self.run_dir / HOLDER_NAME).unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None


def holds_checkpoint(run_dir: Path) -> bool:
    checkpoints = run_dir / "checkpoints"
    return (checkpoints / "last.pt").is_file() or (checkpoints / "previous.pt").is_file()


def clean_leftovers(run_dir: Path) -> list[Path]:
    """Remove temporary files a killed writer left (``.NAME.*.tmp``, a staged previous checkpoint).
    Only under the lock: a live writer's temporary files are never touched."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.is_dir():
            for path in folder.iterdir():
                if path.name.startswith(".") and (path.name.endswith(".tmp") or path.name.endswith(".staging")):
                    if path.name.startswith(".eval.json."):  # genframe eval writes without the lock
                        continue
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return removed


def start_afresh(run_dir: Path) -> bool:
    """Ready ``run_dir`` (locked, no checkpoint) for a fresh run. A directory that holds what a run
    writes before its first checkpoint is a dead end: its files go, with a warning. True if it was one.
    A directory holding anything else is refused, so no user file is ever removed."""
    entries = [p for p in run_dir.iterdir() if p.name not in (LOCK_NAME, HOLDER_NAME)]
    if not entries:
        return False
    foreign = [p.name for p in entries if p.name not in RUN_FILES and not p.name.startswith("config.step")
               and p.name not in RUN_FOLDERS]
    if foreign or not any((run_dir / name).exists() for name in ("config.json", STATUS_NAME)):
        raise RunError(f"run directory {run_dir} already exists and holds other files ({', '.join(sorted(foreign)[:3])}"
                       f"{' ...' if len(foreign) > 3 else ''}); choose a new or empty --run-dir")
    warnings.warn(f"genframe: {run_dir} holds no checkpoint (a run that stopped before its first one); "
                  "starting it afresh", UserWarning, stacklevel=2)
    for path in entries:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return True


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
