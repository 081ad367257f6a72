"""Plugin manager: built-in plugins plus every entry point in the ``genframe`` group.

One broken plugin must not break every command: each entry point is loaded on its own, and a
failure (import error, bad hook signature, misspelled hook, error while registering) is recorded
and warned about, naming the plugin. ``GENFRAME_STRICT_PLUGINS=1`` turns those warnings into
errors. ``GENFRAME_PLUGINS=a,b`` loads only the named entry-point plugins and
``GENFRAME_DISABLE_PLUGINS=a,b`` skips the named ones (built-ins always load).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from genframe import hookspecs
from genframe.errors import PluginError, UnknownComponentError
from genframe.registry import Entry, Registry

ENTRY_POINT_GROUP = "genframe"
BUILTIN_MODULES = ("genframe.builtins",)


@dataclass
class PluginInfo:
    """What ``genframe plugins`` shows about one loaded plugin."""

    name: str
    version: str
    source: str  # "builtin" or "entry point <value>"
    hooks: list[str] = field(default_factory=list)


@dataclass
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    error: str


class PluginWarning(UserWarning):
    """A plugin failed to load; the rest of genframe keeps working."""


def _env_names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _strict() -> bool:
    return os.environ.get("GENFRAME_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")


class PluginHost:
    """A pluggy manager plus the registry its plugins filled and a record of what loaded."""

    def __init__(self, strict: bool | None = None) -> None:
        self.strict = _strict() if strict is None else strict
        self.pm = pluggy.PluginManager("genframe")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: list[PluginInfo] = []
        self.failures: list[PluginFailure] = []

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _fail(self, name: str, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        text = " ".join(str(text).split())  # one line, whatever the exception printed
        if self.strict:
            raise PluginError(f"plugin {name!r} failed to load: {text}")
        self.failures.append(PluginFailure(name, text))
        warnings.warn(
            f"genframe: plugin {name!r} failed to load and is skipped: {text} "
            "(set GENFRAME_STRICT_PLUGINS=1 to make this an error)",
            PluginWarning,
            stacklevel=3,
        )

    def add_plugin(self, plugin: Any, name: str, version: str, source: str) -> bool:
        """Register one plugin object or module; returns False (and records why) if it is broken."""
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validation errors, duplicate names
            self._fail(name, exc)
            return False
        callers = self.pm.get_hookcallers(plugin) or []
        misspelled = sorted(hc.name for hc in callers if not hc.has_spec())
        if misspelled:
            self.pm.unregister(plugin)
            known = ", ".join(sorted(n for n in dir(self.pm.hook) if n.startswith("genframe_")))
            self._fail(name, f"unknown hook(s) {', '.join(misspelled)}; known hooks: {known}")
            return False
        self.plugins.append(PluginInfo(name, version, source, sorted(hc.name for hc in callers)))
        return True

    def load_builtins(self) -> None:
        from genframe import __version__

        for module_name in BUILTIN_MODULES:
            module = __import__(module_name, fromlist=["_"])
            self.add_plugin(module, module_name, __version__, "builtin")

    def load_entry_points(self) -> None:
        allowed = _env_names("GENFRAME_PLUGINS")
        disabled = _env_names("GENFRAME_DISABLE_PLUGINS") or set()
        seen: set[str] = set()
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            if (allowed is not None and ep.name not in allowed) or ep.name in disabled:
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, exc)
                continue
            version = getattr(ep.dist, "version", None) or "unknown"
            self.add_plugin(plugin, ep.name, version, f"entry point {ep.value}")
        for name in sorted((allowed or set()) - seen):
            self._fail(name, f"GENFRAME_PLUGINS names it but no installed plugin has that name "
                             f"(installed: {', '.join(sorted(seen)) or 'none'})")

    def entry(self, kind: str, name: str) -> Entry:
        """``registry.entry``, and when the name is unknown, say which plugins failed to load."""
        try:
            return self.registry.entry(kind, name)
        except UnknownComponentError as exc:
            if not self.failures:
                raise
            failed = "; ".join(f"{f.name}: {f.error}" for f in self.failures)
            raise UnknownComponentError(f"{exc} (plugins that failed to load: {failed})") from None

    def register_components(self) -> None:
        """Call every plugin's ``genframe_register`` one at a time, so a failure names its plugin."""
        for impl in self.pm.hook.genframe_register.get_hookimpls():
            self.registry.current_plugin = impl.plugin_name
            try:
                impl.function(registry=self.registry)
            except PluginError:
                raise
            except Exception as exc:
                self.pm.unregister(name=impl.plugin_name)
                self.plugins = [p for p in self.plugins if p.name != impl.plugin_name]
                self._fail(impl.plugin_name, exc)
        self.registry.current_plugin = "?"


@contextmanager
def attached_loggers(host: PluginHost, names: list[str], run: Any) -> Iterator[None]:
    """Create the named loggers for ``run`` and register them as plugins while the block runs."""
    loggers = [host.entry("logger", name).obj(run) for name in names]
    for index, logger in enumerate(loggers):
        host.pm.register(logger, name=f"logger-{index}-{id(logger)}")
    try:
        yield
    finally:
        for logger in loggers:
            host.pm.unregister(logger)


def load_plugins(strict: bool | None = None, entry_points: bool = True) -> PluginHost:
    """A fresh host with built-ins and (unless disabled) entry-point plugins loaded and registered."""
    host = PluginHost(strict=strict)
    host.load_builtins()
    if entry_points:
        host.load_entry_points()
    host.register_components()
    return host


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _HOST
    if _HOST is None:
        _HOST = load_plugins()
    return _HOST


def reset_host() -> None:
    """Forget the loaded plugins (tests, or after installing a plugin in-process)."""
    global _HOST
    _HOST = None
    importlib.invalidate_caches()  # so newly written *.dist-info entry points are seen
