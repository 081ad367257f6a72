"""Plugin manager: built-in plugins plus every entry point in the ``genframe`` group.

One broken plugin must not break every command, nor a run: each entry point is loaded on its own,
and a failure (import error, bad hook argument, misspelled hook, error while registering) is
recorded and warned about in one line naming the plugin, its package and the file and line to
look at. How a run is heard (callbacks and loggers, failures isolated) is not pluggy's business: see
``genframe.training.listeners``. ``GENFRAME_STRICT_PLUGINS=1`` turns these warnings into errors. ``GENFRAME_PLUGINS=a,b``
loads only the named entry-point plugins and ``GENFRAME_DISABLE_PLUGINS=a,b`` skips the named ones
(built-ins always load).
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from genframe.contracts import hookspecs
from genframe.contracts.errors import PluginError, UnknownComponentError
from genframe.plugins.faults import LIFECYCLE_HOOKS, bad_arguments, unknown_hook
from genframe.plugins.registry import CORE_PLUGIN, AmbiguousComponentError, Entry, Registry
from genframe.util.text import describe, one_line, traceback_text, where
from genframe.version import genframe_version

ENTRY_POINT_GROUP = "genframe"
BUILTIN_MODULES = ("genframe.plugins.builtins",)


@dataclass
class PluginInfo:
    """What ``genframe plugins`` shows about one loaded plugin."""

    name: str
    version: str
    source: str  # "builtin" or "entry point <value>"
    hooks: list[str] = field(default_factory=list)
    distribution: str = ""  # the installed package that provides it (what to upgrade or uninstall)


@dataclass
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    error: str  # one line, ending with "(at file:line)" when an exception says where
    traceback: str = ""  # the whole traceback, for ``genframe plugins --traceback``
    distribution: str = ""
    fix: str = ""  # what to do about it, disabling it included


class PluginWarning(UserWarning):
    """A plugin failed to load or raised in a hook; the rest of genframe keeps working."""


def _env_names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def strict_plugins() -> bool:
    """``GENFRAME_STRICT_PLUGINS=1``: a plugin's or a logger's failure is an error, not a warning."""
    return os.environ.get("GENFRAME_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")


class PluginHost:
    """A pluggy manager plus the registry its plugins filled and a record of what loaded."""

    def __init__(self, strict: bool | None = None) -> None:
        self.strict = strict_plugins() if strict is None else strict
        self.pm = pluggy.PluginManager("genframe")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.plugins: list[PluginInfo] = []
        self.failures: list[PluginFailure] = []
        self.distributions: dict[str, str] = {}  # plugin name -> the package that installed it

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def report(self, text: str, consequence: str) -> None:
        """Strict: raise ``text``; otherwise warn once with what happens next."""
        if self.strict:
            raise PluginError(text)
        warnings.warn(f"genframe: {text}; {consequence} (set GENFRAME_STRICT_PLUGINS=1 to make this an error)",
                      PluginWarning, stacklevel=4)

    def _fail(self, name: str, error: BaseException | str, module: str | None = None, fix: str | None = None) -> None:
        """Record and report that plugin ``name`` (code in ``module``) could not be loaded: it is skipped whole."""
        if isinstance(error, PluginError):  # genframe's own words already say what the plugin did wrong
            text, trace = one_line(error) + where(error, module), traceback_text(error)
        elif isinstance(error, BaseException):
            text, trace = describe(error) + where(error, module), traceback_text(error)
        else:
            text, trace = one_line(error), ""
        dist = self.distributions.get(name, "")
        package = f" (package {dist})" if dist and dist != name else ""
        fix = fix or fix_for(name, dist)
        if not self.strict:
            self.failures.append(PluginFailure(name, text, trace, dist, fix))
        self.report(f"plugin {name!r} failed to load: {text}{package}", f"it is skipped; {fix}")

    def _register(self, plugin: Any, name: str) -> list[str] | str:
        """Register ``plugin``: the hooks it implements, or why it was refused (then it is not registered)."""
        try:
            self.pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):  # older pluggy registers the hooks before the bad one
                self.pm.unregister(plugin)
            return bad_arguments(self.pm, plugin) or describe(exc)
        callers = self.pm.get_hookcallers(plugin) or []
        misspelled = sorted(hc.name for hc in callers if not hc.has_spec())
        if misspelled:  # pluggy accepts any name; genframe would never call it
            self.pm.unregister(plugin)
            return "; ".join(unknown_hook(hook) for hook in misspelled)
        return sorted(hc.name for hc in callers)

    def add_plugin(self, plugin: Any, name: str, version: str, source: str, distribution: str = "") -> bool:
        """Register one plugin object or module; returns False (and records why) if it is broken."""
        if distribution:
            self.distributions[name] = distribution
        try:
            hooks = self._register(plugin, name)
        except Exception as exc:  # a duplicate name, or pluggy choking on the object
            self._fail(name, exc)
            return False
        if isinstance(hooks, str):
            self._fail(name, hooks)
            return False
        self.plugins.append(PluginInfo(name, version, source, hooks, distribution or name))
        return True

    def load_builtins(self) -> None:
        for module_name in BUILTIN_MODULES:
            module = __import__(module_name, fromlist=["_"])
            self.add_plugin(module, CORE_PLUGIN, genframe_version(), "builtin", "genframe")

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
            dist = getattr(ep.dist, "name", None) or ep.name
            if ep.name == CORE_PLUGIN:  # the core's own components are qualified with it (genframe:mnist)
                self._fail(ep.name, f"package {dist} names its entry point {ep.name!r}, the name genframe's own "
                                    "components go by", fix=f"rename the entry point in {dist}'s pyproject.toml")
                continue
            self.distributions[ep.name] = dist
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, exc, module=ep.value.split(":")[0].strip())
                continue
            version = getattr(ep.dist, "version", None) or "unknown"
            self.add_plugin(plugin, ep.name, version, f"entry point {ep.value}", dist)
        for name in sorted((allowed or set()) - seen):
            self._fail(name, f"GENFRAME_PLUGINS names it but no installed plugin has that name "
                             f"(installed: {', '.join(sorted(seen)) or 'none'})",
                       fix="install it, or take it out of GENFRAME_PLUGINS")

    def entry(self, kind: str, name: str) -> Entry:
        """``registry.entry``, and when the name is unknown, say which plugins failed to load."""
        try:
            return self.registry.entry(kind, name)
        except UnknownComponentError as exc:
            if not self.failures or isinstance(exc, AmbiguousComponentError):
                raise
            failed = "; ".join(f"{f.name}: {f.error}" for f in self.failures)
            raise UnknownComponentError(f"{exc} (plugins that failed to load: {failed})") from None

    def register_components(self) -> None:
        """Call every plugin's ``genframe_register`` one at a time; a plugin that raises, or registers what it
        may not (an unknown kind, a name twice), is skipped whole, its other components included, and every
        other plugin keeps working (strict: the error stops the command)."""
        for impl in self.pm.hook.genframe_register.get_hookimpls():
            try:
                with self.registry.registering(impl.plugin_name):
                    impl.function(registry=self.registry)
            except Exception as exc:  # strict: _fail raises
                self.pm.unregister(name=impl.plugin_name)
                self.plugins = [p for p in self.plugins if p.name != impl.plugin_name]
                self._fail(impl.plugin_name, exc, module=_module_of(impl.plugin))

    def check_hooks(self, obj: Any) -> str | None:
        """Why an object with old lifecycle hook methods (a logger of genframe 0.1) cannot be used: a
        misspelled hook, an argument a hook never passes; None when it can."""
        hooks = self._register(obj, f"check-{id(obj)}")
        if isinstance(hooks, str):
            return hooks
        self.pm.unregister(obj)
        return None

    def lifecycle_plugins(self) -> list[tuple[Any, str]]:
        """Plugins that implement the old lifecycle hooks to follow runs, in pluggy's call order."""
        found: dict[str, Any] = {}
        for hook in LIFECYCLE_HOOKS:
            for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):  # pluggy calls them reversed
                found.setdefault(impl.plugin_name, impl.plugin)
        return [(plugin, name) for name, plugin in found.items()]


def fix_for(name: str, distribution: str) -> str:
    """How to get rid of a broken plugin's warning: fix it, or leave it out."""
    if name == CORE_PLUGIN:
        return "reinstall genframe"
    dist = distribution or name
    return (f"upgrade or fix package {dist}, or leave it out: GENFRAME_DISABLE_PLUGINS={name} "
            f"(or pip uninstall {dist})")


def _module_of(plugin: Any) -> str:
    """The module whose package holds ``plugin``'s code: where to look for the line that raised."""
    return plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__


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
