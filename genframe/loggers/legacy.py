"""Loggers written against the pluggy lifecycle hooks of genframe 0.1 (``genframe_run_start``,
``genframe_log``, ``genframe_checkpoint``, ``genframe_rollback``, ``genframe_run_end``), heard as listeners.

Two kinds keep working until 0.4, each with one deprecation warning per run that says what to change:
a logger class whose methods are those hooks (``registry.add("logger", ...)``), and a plugin module that
implements them to follow every run. The plugin kind is called through pluggy itself
(``subset_hook_caller``), one plugin at a time, so a failure stays that plugin's own: a wrapper wraps
its own plugin's implementation, no longer the others', and the plugins are called in pluggy's order
(tryfirst, the latest registered first, trylast) of the first lifecycle hook they implement.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from genframe.contracts.context import RunContext
from genframe.contracts.listeners import Control, Logger
from genframe.plugins.faults import LIFECYCLE_HOOKS
from genframe.util.deprecation import deprecate

#: the point each old hook became, and how the old hook's arguments come from the point's
HOOK_OF_POINT = {"on_run_start": "genframe_run_start", "on_log": "genframe_log", "on_checkpoint": "genframe_checkpoint",
                 "on_rollback": "genframe_rollback", "on_run_end": "genframe_run_end"}
INSTEAD = ("subclass genframe.Logger and override on_run_start(run, control), on_log(run, control, metrics, "
           "images), on_checkpoint(run, control, path), on_rollback(run, control, reason) and on_run_end(run, "
           "control, status), with the step in run.step (docs/writing-plugins.md)")


def hook_arguments(point: str, run: RunContext, args: tuple[Any, ...]) -> dict[str, Any]:
    """The keyword arguments the old hook for ``point`` took."""
    if point == "on_log":
        return {"run": run, "step": run.step, "metrics": args[0], "images": args[1]}
    if point == "on_checkpoint":
        return {"run": run, "path": args[0], "step": run.step}
    if point == "on_rollback":
        return {"run": run, "step": run.step, "reason": args[0]}
    if point == "on_run_end":
        return {"run": run, "status": args[0]}
    return {"run": run}


def uses_hooks(obj: Any) -> bool:
    """A logger object that implements the old hooks and none of the points."""
    own_points = any(getattr(type(obj), point, None) not in (None, getattr(Logger, point)) for point in HOOK_OF_POINT)
    return not own_points and any(callable(getattr(obj, hook, None)) for hook in LIFECYCLE_HOOKS)


class OldHooks(Logger):
    """The five points the old hooks covered, each handed to ``_call``."""

    def _call(self, point: str, run: RunContext, args: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def on_run_start(self, run: RunContext, control: Control) -> None:
        self._call("on_run_start", run, ())

    def on_log(self, run: RunContext, control: Control, metrics: dict[str, float], images: dict[str, Any]) -> None:
        self._call("on_log", run, (metrics, images))

    def on_checkpoint(self, run: RunContext, control: Control, path: Path) -> None:
        self._call("on_checkpoint", run, (path,))

    def on_rollback(self, run: RunContext, control: Control, reason: str) -> None:
        self._call("on_rollback", run, (reason,))

    def on_run_end(self, run: RunContext, control: Control, status: str) -> None:
        self._call("on_run_end", run, (status,))


class HookLogger(OldHooks):
    """Hears the points for a logger object whose methods are the old hooks."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner, self.run = inner, getattr(inner, "run", None)
        # each hook it implements, with the arguments it takes (an implementation may take fewer than its hook)
        self.hooks = {point: (method, set(inspect.signature(method).parameters))
                      for point, hook in HOOK_OF_POINT.items() if callable(method := getattr(inner, hook, None))}
        deprecate(f"logger {name!r} ({type(inner).__module__}.{type(inner).__qualname__}) implements the "
                  "genframe_* lifecycle hooks", since="0.2", until="0.4", instead=INSTEAD, stacklevel=4)

    def _call(self, point: str, run: RunContext, args: tuple[Any, ...]) -> None:
        if point in self.hooks:
            method, accepted = self.hooks[point]
            method(**{name: value for name, value in hook_arguments(point, run, args).items() if name in accepted})


class PluginHooks(OldHooks):
    """Hears the points for a plugin module that implements the old hooks, through pluggy, this plugin only."""

    def __init__(self, pm: Any, plugin: Any, name: str) -> None:
        self.pm, self.plugin, self.run = pm, plugin, None
        self.callers: dict[str, Any] = {}
        deprecate(f"plugin {name!r} implements the genframe_* lifecycle hooks to follow runs", since="0.2",
                  until="0.4", instead=INSTEAD + "; register it with registry.add('logger', NAME, Class) and name it "
                  "in logging.loggers", stacklevel=4)

    def _call(self, point: str, run: RunContext, args: tuple[Any, ...]) -> None:
        hook = HOOK_OF_POINT[point]
        if hook not in self.callers:
            others = [p for p in self.pm.get_plugins() if p is not self.plugin]
            self.callers[hook] = self.pm.subset_hook_caller(hook, remove_plugins=others)
        self.callers[hook](**hook_arguments(point, run, args))
