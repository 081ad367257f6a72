"""The core's callbacks: divergence guard, evaluation schedule, keep-best, EMA. The base class and
its control surface are contracts (``genframe.contracts.listeners``).
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCE = "genframe.contracts.listeners"


def __getattr__(name: str) -> Any:
    """The room's public names, imported on first use (``from genframe.callbacks import Callback, Control`` keeps working)."""
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(importlib.import_module(_SOURCE), name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
