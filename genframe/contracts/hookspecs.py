"""The plugin contract: pluggy hook specifications a genframe plugin implements.

A plugin is a module (or object) with functions marked ``@genframe.hookimpl`` whose names match the
specs below; an implementation may take fewer arguments than its spec, never one the spec does not
pass, and a name starting with ``genframe_`` that is not below makes the plugin fail to load (with a
did-you-mean). ``genframe_register`` adds components: pluggy is for registering plugins.

The lifecycle hooks (``genframe_run_start`` ... ``genframe_run_end``) are how genframe 0.1 let loggers
follow a run; they are deprecated since 0.2 and go in 0.4. A run is now heard through listeners
(``genframe.Logger``, ``genframe.Callback``: ``genframe.contracts.listeners``); plugins and loggers that
implement these hooks are still called, through ``genframe.loggers.legacy``, with a deprecation warning.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("genframe")
hookimpl = pluggy.HookimplMarker("genframe")


@hookspec
def genframe_register(registry: Any) -> None:
    """Add components (recipes, datasets, loggers, ...) with ``registry.add(kind, name, obj)``."""


@hookspec
def genframe_run_start(run: Any) -> None:
    """A run started (or resumed); ``run`` has ``run_dir``, ``config``, ``recipe_name``, ``step``."""


@hookspec
def genframe_log(run: Any, step: int, metrics: dict[str, float], images: dict[str, Any]) -> None:
    """Metrics (scalars) and pictures at global optimizer ``step``: image samples as tensors N,C,H,W in
    [-1, 1], anything a recipe draws itself (e.g. a scatter of 2-D samples, a GIF) as a file ``Path``."""


@hookspec
def genframe_checkpoint(run: Any, path: Any, step: int) -> None:
    """A checkpoint was written atomically to ``path`` at global ``step``."""


@hookspec
def genframe_rollback(run: Any, step: int, reason: str) -> None:
    """Training diverged and was rolled back to the checkpoint at ``step``; later records are void. Also
    when a callback finishes the run there, e.g. the divergence guard out of rollbacks (``reason`` says
    "finished there")."""


@hookspec
def genframe_run_end(run: Any, status: str) -> None:
    """The run ended with ``status``: ``completed``, ``interrupted`` or ``failed``."""
