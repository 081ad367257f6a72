"""The layout of an exported folder (``genframe export``): its names, its record, and reading it back.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from genframe.contracts.errors import CheckpointError
from genframe.util.text import one_line

WEIGHTS_NAME = "model.safetensors"


EXPORT_NAME = "export.json"


EXPORT_FORMAT = 1


RECORD_KEYS = ("format", "recipe", "weights", "step")  # what loading needs; the rest is for the model card


def is_export(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / WEIGHTS_NAME).is_file() and (path / EXPORT_NAME).is_file()


def read_export(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """The export record, the config and the weights of an exported folder (safetensors: no unpickling)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        record = json.loads((folder / EXPORT_NAME).read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        data = (folder / WEIGHTS_NAME).read_bytes()
        recorded = record.get("weights_sha256") if isinstance(record, dict) else None
        if recorded is not None and hashlib.sha256(data).hexdigest() != recorded:  # (exports before 0.2.1: none)
            raise CheckpointError(f"{folder}/{WEIGHTS_NAME} is damaged: its SHA-256 is not the one {EXPORT_NAME} "
                                  "recorded; copy the export again, or export the run again")
        weights = load(data)
    except (OSError, ValueError, SafetensorError) as exc:  # a missing config, bad JSON, damaged weights
        raise CheckpointError(f"{folder} is not a whole genframe export ({one_line(exc)[:200]}); "
                              "export the run again") from None
    missing = [key for key in RECORD_KEYS if not isinstance(record, dict) or key not in record]
    if missing or record.get("format") != EXPORT_FORMAT or not isinstance(config, dict):
        what = f"lacks {', '.join(missing)}" if missing else f"is not format {EXPORT_FORMAT}"
        raise CheckpointError(f"{folder}/{EXPORT_NAME} {what}: it is not a genframe export record; "
                              "export the run again")
    return record, config, weights
