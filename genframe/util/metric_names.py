"""Metric names that changed, and reading records written under the old ones (no torch: configs use it too)."""

from __future__ import annotations

from typing import Any

from genframe.util.deprecation import deprecate

#: metric names of genframe 0.1 and what they are called now
RENAMED = {"coverage": "class_spread"}


def renamed_metrics(record: dict[str, Any], where: str = "a record") -> dict[str, Any]:
    """``record`` with metric names of genframe 0.1 (``coverage``, ``eval/coverage``, ``eval/trained/coverage``)
    under their names now (``class_spread``), with one deprecation notice; other keys as they are."""
    old = [key for key in record if is_core_metric(key) and key.rpartition("/")[2] in RENAMED]
    if not old:
        return record
    deprecate(f"the metric name {old[0]!r} in {where}", since="0.2", until="0.4",
              instead=f"it is {RENAMED[old[0].rpartition('/')[2]]!r} now (the classifier's predicted-class entropy); "
                      "knn_coverage is the k-NN coverage", stacklevel=3)
    return {current_name(key): value for key, value in record.items()}


def is_core_metric(key: str) -> bool:
    """Whether ``key`` names one of the core's evaluation figures: bare (an eval.json's samples), ``eval/NAME`` or
    ``eval/trained/NAME`` (a plugin's own ``train/coverage``, say, is its own and keeps its name)."""
    head = key.rpartition("/")[0]
    return head in ("", "eval", "eval/trained")


def current_name(key: str) -> str:
    """``key`` as the core names it now (``eval/coverage`` -> ``eval/class_spread``); any other key as it is."""
    head, sep, tail = key.rpartition("/")
    return f"{head}{sep}{RENAMED[tail]}" if is_core_metric(key) and tail in RENAMED else key
