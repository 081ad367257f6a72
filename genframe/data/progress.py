"""What a dataset tells the user while it prepares their files: progress over many files, and cache use.

Everything goes to stderr, so it never mixes with a command's output. A terminal gets a tqdm bar; a log
(CI, a batch job) gets a plain line every few seconds instead of a bar redrawn with carriage returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")

#: Up to this many files, reading is quick enough to go unannounced.
PROGRESS_MIN_FILES = 1000
LINE_EVERY_SECONDS = 5.0

_said: set[str] = set()


def with_progress(items: Iterable[Item], total: int, label: str) -> Iterator[Item]:
    """``items`` unchanged, reporting how far through ``total`` they are when there are many."""
    if total <= PROGRESS_MIN_FILES:
        yield from items
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=f"genframe: {label}", file=sys.stderr, unit="file",
                        mininterval=1.0, dynamic_ncols=True, leave=False)
        return
    last = time.monotonic()
    reported = False
    done = 0
    for done, item in enumerate(items, 1):
        yield item
        if time.monotonic() - last >= LINE_EVERY_SECONDS:
            print(f"genframe: {label}: {done}/{total} files", file=sys.stderr, flush=True)
            last, reported = time.monotonic(), True
    if reported:  # a log that showed the progress also shows its end
        print(f"genframe: {label}: {done}/{total} files, done", file=sys.stderr, flush=True)


def say_once(message: str) -> None:
    """Print ``message`` to stderr the first time this process is asked to (a run builds each split
    more than once: for training, then for its evaluations)."""
    if message not in _said:
        _said.add(message)
        print(f"genframe: {message}", file=sys.stderr, flush=True)
