"""Plugins: discovery through entry points (``host``), the registry of components, one-line reports
of a plugin's faults, the core's own registrations (``builtins``) and recipe lookup.
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCE = "genframe.plugins.host"


def __getattr__(name: str) -> Any:
    """The room's public names, imported on first use (``from genframe.plugins import get_host`` keeps working)."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module(_SOURCE), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
