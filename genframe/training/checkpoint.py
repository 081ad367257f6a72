"""Checkpoints: atomic save with a content checksum, the previous checkpoint kept beside the last,
safe load (``weights_only=True``: loading never runs code) and finding a run's latest one.

A checkpoint holds everything needed to resume: the model's weights (saved by the core), the
trainer's state (optimizer, buffers, RNG streams), the loop position, the resolved config, and
what made it (genframe version, recipe, plugin and its version). Its ``checksum`` is a SHA-256 of
that content (every tensor's bytes, dtype and shape, every key and plain value), so a flipped byte
inside a weight, which PyTorch's reader would load silently, is caught on load.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from genframe.contracts.errors import CheckpointError
from genframe.util.atomic import atomic_write
from genframe.util.text import one_line

FORMAT_VERSION = 2  # 2: policies' state under "callbacks"
OLDEST_FORMAT = 2  # format 1 lived a week before any release (docs/compatibility.md)
CHECKPOINT_DIR = "checkpoints"
LAST_NAME = "last.pt"
PREVIOUS_NAME = "previous.pt"  # the checkpoint before last.pt, kept in case last.pt is damaged
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's file format is a zip archive
# What every genframe checkpoint holds, with the type each must have (the rest is the recipe's).
REQUIRED = {"format": int, "recipe": str, "config": dict, "loop": dict, "model": dict}


def config_hash(config: dict[str, Any]) -> str:
    """Short stable hash of a resolved config, recorded in checkpoints."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _feed(digest: Any, obj: Any) -> None:
    """Add ``obj`` to ``digest`` canonically: the same content gives the same bytes after a save and load."""
    if torch.is_tensor(obj):
        data = obj.detach().cpu().contiguous()
        digest.update(f"T{data.dtype}{tuple(data.shape)}".encode())
        if data.numel():
            digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        digest.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):  # keys of mixed types (optimizer states use ints)
            _feed(digest, key)
            _feed(digest, obj[key])
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{type(obj).__name__[0]}{len(obj)}".encode())
        for item in obj:
            _feed(digest, item)
    elif isinstance(obj, (str, bytes)):
        data = obj.encode() if isinstance(obj, str) else obj
        digest.update(f"{type(obj).__name__}{len(data)}:".encode() + data)
    else:  # int, float (repr round-trips exactly), bool, None, torch.dtype ...
        digest.update(f"{type(obj).__name__}:{obj!r};".encode())


def content_checksum(state: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's content, its ``checksum`` entry left out."""
    digest = hashlib.sha256()
    _feed(digest, {key: value for key, value in state.items() if key != "checksum"})
    return digest.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically with its checksum; the previous checkpoint survives any
    failure, and a run's ``last.pt`` keeps its predecessor beside it as ``previous.pt``."""
    path = Path(path)
    state = {"format": FORMAT_VERSION, **state}
    state["checksum"] = {"sha256": content_checksum(state)}

    def keep(_: Path) -> None:  # the new file is whole: the old last becomes previous, then is replaced
        if path.name == LAST_NAME and path.exists():
            previous = path.with_name(PREVIOUS_NAME)
            staging = path.with_name(f".{PREVIOUS_NAME}.staging")
            staging.unlink(missing_ok=True)
            try:
                os.link(path, staging)  # no copy: the old file's data, a second name
            except OSError:  # a file system without hard links
                shutil.copyfile(path, staging)
            os.replace(staging, previous)

    try:
        return atomic_write(path, lambda handle: torch.save(state, handle), check=keep)
    except (OSError, RuntimeError) as exc:  # a full disk inside torch.save is a RuntimeError ("unexpected pos")
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)[:160]
        raise CheckpointError(f"could not write checkpoint {path}: {reason}; the previous checkpoint is unchanged "
                              "(a full disk or a permission? free space or fix it, then resume)") from None


def previous_of(path: Path) -> Path | None:
    """The kept previous checkpoint beside ``path``, when there is one (and ``path`` is not it)."""
    previous = path.with_name(PREVIOUS_NAME)
    return previous if previous.is_file() and previous.resolve() != path.resolve() else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file from a checkpoint path or a run directory (its ``checkpoints/last.pt``, or the
    previous one when a crash came between the two renames)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / CHECKPOINT_DIR / LAST_NAME
        if candidate.is_file():
            return candidate
        previous = path / CHECKPOINT_DIR / PREVIOUS_NAME
        if previous.is_file():
            warnings.warn(f"genframe: {candidate} is missing; using the previous checkpoint {previous}",
                          UserWarning, stacklevel=2)
            return previous
        raise CheckpointError(f"{path} has no checkpoint ({CHECKPOINT_DIR}/{LAST_NAME} is missing); start it "
                              f"afresh with `genframe run RECIPE --run-dir {path}`, or give a .pt checkpoint")
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run directory or a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file; give a run directory or a checkpoint file")
    return path


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory a checkpoint file belongs to (``RUN/checkpoints/x.pt`` -> ``RUN``), else its folder."""
    checkpoint = Path(checkpoint).resolve()
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else checkpoint.parent


def _fallback_hint(path: Path) -> str:
    """Where to turn instead: the kept previous checkpoint, when it is whole."""
    previous = previous_of(path)
    if previous is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_checkpoint(previous)
        except CheckpointError:
            previous = None
    if previous is None:
        return "use an earlier checkpoint or start a new run"
    return f"the previous checkpoint is whole: use {previous} instead (to train on: --resume {previous})"


def _read(path: Path) -> Any:
    """``torch.load`` with weights only, every failure told apart as code-carrying, damaged or foreign."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load's errors on bad bytes range from KeyError to IndexError
        reason = one_line(exc)
        if isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in reason:  # a callable to import: code
            raise CheckpointError(f"refused to load {path}: it holds Python objects that could run code, which no "
                                  "genframe checkpoint does; only load checkpoints you trust") from None
        if head != ZIP_MAGIC:
            kind = "an empty file" if not head else "not a PyTorch checkpoint file"
            raise CheckpointError(f"{path} is not a genframe checkpoint ({kind}); {_fallback_hint(path)}") from None
        raise CheckpointError(f"checkpoint {path} is damaged (truncated or corrupted: {type(exc).__name__}: "
                              f"{reason[:120]}); {_fallback_hint(path)}") from None


def _check_shape(path: Path, state: Any) -> None:
    if not isinstance(state, dict) or "format" not in state or "recipe" not in state:
        raise CheckpointError(f"{path} is not a genframe checkpoint (no format/recipe record)")
    wrong = [f"{key!r} missing" if key not in state else f"{key!r} is a {type(state[key]).__name__}"
             for key, kind in REQUIRED.items() if not isinstance(state.get(key), kind)]
    if not wrong and not isinstance(state["loop"].get("step"), int):
        wrong.append("'loop' has no step")
    if wrong:
        raise CheckpointError(f"{path} is not a whole genframe checkpoint ({', '.join(wrong)}); {_fallback_hint(path)}")
    if state["format"] > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, newer than this genframe "
                              f"understands ({FORMAT_VERSION}); upgrade genframe")
    if state["format"] < OLDEST_FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, written by a pre-release genframe "
                              f"that no released version reads (docs/compatibility.md); train it again")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a genframe checkpoint safely (tensors and plain data only) onto the CPU, checking that it is
    whole: the right entries, and the content its checksum was made of."""
    path = resolve_checkpoint(path)
    state = _read(path)
    _check_shape(path, state)
    checksum = state.pop("checksum", None)
    if checksum is None:
        warnings.warn(f"genframe: checkpoint {path} carries no checksum (written before genframe recorded one); "
                      "it loads unverified", UserWarning, stacklevel=2)
    elif not isinstance(checksum, dict) or checksum.get("sha256") != content_checksum(state):
        raise CheckpointError(f"checkpoint {path} is damaged (its content does not match its checksum: changed "
                              f"after it was written); {_fallback_hint(path)}")
    return state
