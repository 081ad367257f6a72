"""Opening a run's loggers: the ones ``logging.loggers`` names, each made for the run, plus the plugins
that still follow runs through the old lifecycle hooks (``genframe.loggers.legacy``)."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from genframe.contracts.listeners import Listener
from genframe.contracts.mistakes import check_listener
from genframe.loggers.legacy import HookLogger, PluginHooks, uses_hooks


@dataclass
class Watcher:
    """A logger as the run's dispatcher holds it: what to call, and how to name it when it fails."""

    listener: Listener
    label: str  # e.g. "logger 'wandb'"
    package: str  # the installed package that provides it: what to upgrade or report
    module: str  # where its code is, for the file and line of a failure
    old_hooks: bool = False  # written against the old hooks: failures name the hook it implemented


def is_console(name: str) -> bool:
    """Whether logger ``name`` is the core's console (``--quiet`` leaves it out; a command that prints its own
    result does not open it), however it is named."""
    return name in ("console", "genframe:console")


def open_loggers(host: Any, names: list[str], run: Any) -> list[Watcher]:
    """The named loggers made for ``run`` (``LoggerClass(run)``), then every plugin that implements the old
    lifecycle hooks. A logger whose old hooks cannot be called is reported and left out."""
    watchers = []
    for name in names:
        entry = host.entry("logger", name)
        logger = entry.obj(run)
        label, package = f"logger {name!r}", host.distributions.get(entry.plugin, entry.plugin)
        old = uses_hooks(logger)
        if old:
            problem = host.check_hooks(logger)
            if problem:
                host.report(f"{label} from {package} cannot be used: {problem}", "the run goes on without it")
                continue
        if not old:
            check_listener(type(logger), "logger")
        watchers.append(Watcher(HookLogger(logger, name) if old else logger, label, package,
                                type(logger).__module__, old))
    for plugin, plugin_name in host.lifecycle_plugins():
        module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        watchers.append(Watcher(PluginHooks(host.pm, plugin, plugin_name), f"plugin {plugin_name!r}",
                                host.distributions.get(plugin_name, plugin_name), module, True))
    return watchers
