"""The train/test split of data that comes without one: a fixed hold-out of ``data.test_fraction``.

Items are ranked by a salted SHA-256 of their name (a file's relative path, an array row's index): a
fixed-seed permutation that needs no random generator, so it is the same on every machine and with
every library version. The first ``round(n * test_fraction)`` of the ranking are the test split, the
rest the training split; they never overlap. Ranking by name also keeps the split stable as files are
added: an image already in the training split moves to the test split only at the boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from genframe.contracts.errors import DataError

SPLITS = ("train", "test")
_SALT = b"genframe-holdout-1\0"


def check_split(dataset: str, split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"Unknown {dataset} split {split!r}; expected one of {list(SPLITS)}; "
                        f"fix the split name in your config.")


def holdout_indices(names: Sequence[str], split: str, test_fraction: float, what: str) -> np.ndarray:
    """Sorted positions in ``names`` that belong to ``split``; ``what`` names the data in errors."""
    count = len(names)
    if count < 2:
        raise DataError(f"{what} holds {count} image(s); holding out a test split needs at least 2: add images, "
                        f"or give the data its own split (train/ and test/ folders)")
    test_count = min(count - 1, max(1, round(count * test_fraction)))
    keys = [hashlib.sha256(_SALT + name.encode("utf-8", "surrogateescape")).digest() for name in names]
    ranking = sorted(range(count), key=keys.__getitem__)
    chosen = ranking[:test_count] if split == "test" else ranking[test_count:]
    return np.array(sorted(chosen), dtype=np.int64)
