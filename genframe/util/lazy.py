"""A package whose public names live in one of its modules, imported on first use (PEP 562), so importing
the package (or a sibling module of it) costs nothing more."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def names_from(source: str, package: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that finds its names in module ``source``."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return getattr(importlib.import_module(source), name)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__
