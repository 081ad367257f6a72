"""Metric names that changed, and reading records written under the old ones (no torch: configs use it too)."""

from __future__ import annotations

from typing import Any

from genframe.util.deprecation import deprecate

#: metric names of genframe 0.1 and what they are called now
RENAMED = {"coverage": "class_spread"}


def renamed_metrics(record: dict[str, Any], where: str = "a record") -> dict[str, Any]:
    """``record`` with metric names of genframe 0.1 (``coverage``, ``eval/coverage``, ``eval/trained/coverage``)
    under their names now (``class_spread``), with one deprecation notice; other keys as they are."""
    old = [key for key in record if key.rpartition("/")[2] in RENAMED]
    if not old:
        return record
    deprecate(f"the metric name {old[0]!r} in {where}", since="0.2", until="0.4",
              instead=f"it is {RENAMED[old[0].rpartition('/')[2]]!r} now (the classifier's predicted-class entropy); "
                      "knn_coverage is the k-NN coverage", stacklevel=3)
    renamed = {}
    for key, value in record.items():
        head, sep, tail = key.rpartition("/")
        renamed[f"{head}{sep}{RENAMED.get(tail, tail)}"] = value
    return renamed
