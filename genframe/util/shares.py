"""Settings counted in steps that may instead be a share of the run: ``lr_decay_steps = "100%"``.

A run's length is known at its start (``trainer.max_steps``, or its epochs), or after its first steps when
it trains for a budget of minutes (``trainer.budget_minutes``); a schedule written as a share of the run
follows that length, so the same recipe fits its schedule to a slower machine's shorter run instead of
being cut off partway through it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import PlainValidator

_SHARE = re.compile(r"^(\d+(?:\.\d+)?)%$")


def _steps_or_share(value: object) -> int | str:
    """A whole number of steps (also written as digits) or a share ``"P%"``, 0 < P <= 100; anything else is
    refused in one message."""
    text = value.strip() if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if text is not None and text.isdigit() and int(text) > 0:
        return int(text)
    match = _SHARE.match(text) if text is not None else None
    if match and 0 < float(match[1]) <= 100:
        return text
    raise ValueError(f"{value!r} is neither a positive whole number of steps nor a share of the run above 0% and "
                     "at most 100% (such as '25%')")


#: A positive number of steps, or a share of the run's steps written ``"P%"`` (0 < P <= 100).
StepsOrShare = Annotated[int | str, PlainValidator(_steps_or_share)]


def steps_of(value: int | str | None, total_steps: int | None) -> int | None:
    """``value`` in steps: a number as it is; a share of ``total_steps``, rounded, at least 1 (None while the
    run's length is not known yet); None stays None."""
    if value is None or isinstance(value, int):
        return value
    if total_steps is None:
        return None
    return max(1, round(float(value.rstrip("%")) / 100 * total_steps))
