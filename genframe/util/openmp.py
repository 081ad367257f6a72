"""How long torch's idle OpenMP threads spin before they sleep: set before torch loads, for the CLI's process.

After each parallel op, libgomp's threads spin-wait (300,000 rounds by default) for the next one. Where
work runs on threads of its own between torch ops (the ``ebm`` recipe's Langevin workers on a 2-core
machine), those spinning threads take the cores the workers need. 20,000 rounds keeps back-to-back
ops as fast and frees the cores soon after: the fast recipe's training step with bf16 chains took 72.0 and
77.9 ms instead of 82.9 and 82.0 (``python benchmarks/step_profile.py --set sampler.precision=bf16``, runs
alternating with ``GOMP_SPINCOUNT=300000``; docs/performance.md). A value the user set is kept.
"""

from __future__ import annotations

import os
import sys

SPINCOUNT = "20000"


def spin_less() -> None:
    """Set ``GOMP_SPINCOUNT`` unless the user did, or torch (and with it libgomp) is already loaded."""
    if "torch" not in sys.modules:
        os.environ.setdefault("GOMP_SPINCOUNT", SPINCOUNT)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS tells it, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
