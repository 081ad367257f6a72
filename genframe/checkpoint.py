"""Checkpoints: atomic save, safe load (``weights_only=True``), and finding a run's latest one.

A checkpoint holds everything needed to resume: the model's weights (saved by the core), the
trainer's state (optimizer, buffers, RNG streams), the loop position, the resolved config, and
what made it (genframe version, recipe, plugin and its version).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from genframe.atomic import atomic_write
from genframe.errors import CheckpointError

FORMAT_VERSION = 2  # 2: policies' state under "callbacks" (1: in the loop and trainer state)
CHECKPOINT_DIR = "checkpoints"
LAST_NAME = "last.pt"


def config_hash(config: dict[str, Any]) -> str:
    """Short stable hash of a resolved config, recorded in checkpoints."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically; the previous checkpoint survives any failure."""
    state = {"format": FORMAT_VERSION, **state}
    try:
        return atomic_write(path, lambda handle: torch.save(state, handle))
    except OSError as exc:
        raise CheckpointError(f"could not write checkpoint {path}: {exc.strerror or exc}; "
                              "the previous checkpoint is unchanged (free disk space or fix permissions)") from exc


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file from a checkpoint path or a run directory (its ``checkpoints/last.pt``)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / CHECKPOINT_DIR / LAST_NAME
        if not candidate.is_file():
            raise CheckpointError(f"{path} has no checkpoint ({CHECKPOINT_DIR}/{LAST_NAME} is missing); "
                                  "train it first, or give the path of a .pt checkpoint")
        return candidate
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run directory or a checkpoint file")
    return path


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory a checkpoint file belongs to (``RUN/checkpoints/x.pt`` -> ``RUN``), else its folder."""
    checkpoint = Path(checkpoint).resolve()
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else checkpoint.parent


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a genframe checkpoint safely (tensors and plain data only) onto the CPU."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):  # it pickles objects that would run code when loaded
            raise CheckpointError(f"refused to load {path}: it holds Python objects that could run code, which no "
                                  "genframe checkpoint does; only load checkpoints you trust") from None
        raise CheckpointError(f"checkpoint {path} is damaged ({' '.join(str(exc).split())[:200]}); "
                              "resume from an earlier one or start a new run") from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise CheckpointError(f"checkpoint {path} is damaged or not a genframe checkpoint ({reason}); "
                              "resume from an earlier one or start a new run") from None
    if not isinstance(state, dict) or "format" not in state or "recipe" not in state:
        raise CheckpointError(f"{path} is not a genframe checkpoint (no format/recipe record)")
    if state["format"] > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, newer than this genframe "
                              f"understands ({FORMAT_VERSION}); upgrade genframe")
    return state
