"""Configuration: pydantic sections every recipe has, config files, ``--set`` overrides and
one-line dotted errors (``sections``); which callbacks a config turns on (``callbacks``).
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCE = "genframe.config.sections"


def __getattr__(name: str) -> Any:
    """The room's public names, imported on first use (``from genframe.config import RecipeConfig`` keeps working without importing pydantic for every
    submodule)."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module(_SOURCE), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
