"""Warnings, when a run starts, about plugin code genframe would otherwise never call and never mention:
a listener method that looks like a misspelled point (``on_evaluaton``), and methods of genframe 0.1's
contracts the core no longer calls (``Trainer.distribute``), each named with its replacement.

Each warning points at the method's own file and line, and comes once per class and process.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

from genframe.contracts.components import Recipe, Trainer
from genframe.contracts.listeners import POINTS
from genframe.util.deprecation import GenframeDeprecationWarning


class ContractWarning(UserWarning):
    """Plugin code that looks meant for genframe but that genframe never calls."""


#: Methods genframe 0.1's contracts had that no release since calls, with what took their place.
RETIRED_METHODS: dict[type, dict[str, str]] = {
    Trainer: {
        "distribute": "override reseed(seed) instead: the core calls it on each torchrun process beyond the first "
                      "with that process's own seed (and after a rollback)",
        "is_settled": "a callback that calls control.skip_checkpoint() in on_before_checkpoint puts off a "
                      "checkpoint (genframe.Callback)",
        "sampling_model": "a callback's sampling_model() supplies the network to sample with (the core's `ema` "
                          "callback keeps averaged weights)",
    },
    Recipe: {
        "build_sampling_model": "a callback's sampling_model() builds the network it samples with",
    },
}


def _where(cls: type, name: str) -> tuple[str, int]:
    function = getattr(getattr(cls, name), "__func__", getattr(cls, name))
    code = getattr(function, "__code__", None)
    return (code.co_filename, code.co_firstlineno) if code is not None else (cls.__module__, 0)


def _warn(text: str, category: type[Warning], cls: type, name: str) -> None:
    filename, line = _where(cls, name)
    warnings.warn_explicit(f"genframe: {text}", category, filename, line, module=cls.__module__)


_CHECKED: set[tuple[type, str]] = set()  # (class, check) done in this process: each warning comes once


def _first_time(cls: type, check: str) -> bool:
    if (cls, check) in _CHECKED:
        return False
    _CHECKED.add((cls, check))
    return True


def check_listener(cls: type, label: str) -> None:
    """Warn about each ``on_*`` method of ``cls`` that is no point but close to one (a did-you-mean)."""
    if not _first_time(cls, "listener"):
        return
    for name in dir(cls):
        if not name.startswith("on_") or name in POINTS or not callable(getattr(cls, name, None)):
            continue
        hint = difflib.get_close_matches(name, POINTS, n=1, cutoff=0.8)
        if hint:
            _warn(f"{label} {cls.__qualname__} defines {name}, which genframe never calls; did you mean "
                  f"{hint[0]}? (the points: docs/writing-plugins.md)", ContractWarning, cls, name)


def check_retired(cls: type) -> None:
    """Warn about each method ``cls`` defines that genframe 0.1's contract had and no release since calls."""
    if not _first_time(cls, "retired"):
        return
    for base, retired in RETIRED_METHODS.items():
        if not issubclass(cls, base):
            continue
        for name, instead in retired.items():
            if callable(getattr(cls, name, None)) and not hasattr(base, name):
                _warn(f"{base.__name__}.{name} ({cls.__qualname__}) is no longer called since genframe 0.2: "
                      f"{instead} (docs/upgrading-plugins.md)", GenframeDeprecationWarning, cls, name)


def check_components(*components: Any) -> None:
    """``check_retired`` for each of a run's components (a sampler has no retired methods yet, a recipe and a
    trainer do)."""
    for component in components:
        check_retired(type(component))
