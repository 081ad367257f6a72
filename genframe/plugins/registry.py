"""Components by kind and name, filled by plugins through ``genframe_register``.

A component is registered either as the object itself or as a ``"package.module:attribute"`` string,
imported the first time the component is used: listing plugins or printing a config then imports no
torch. Unknown names fail with the list of known ones and a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any

from genframe.contracts.errors import PluginError, UnknownComponentError

KINDS = ("recipe", "dataset", "model", "logger", "callback")


class Entry:
    """One registered component and the plugin that provided it; a ``"module:attribute"`` reference is
    imported on first use of ``obj``."""

    def __init__(self, kind: str, name: str, obj: Any, plugin: str) -> None:
        self.kind, self.name, self.plugin = kind, name, plugin
        self.reference = obj if isinstance(obj, str) else None
        self._obj = None if isinstance(obj, str) else obj

    @property
    def obj(self) -> Any:
        if self._obj is None:
            self._obj = _import_reference(self.reference, f"{self.kind} {self.name!r} of plugin {self.plugin!r}")
        return self._obj

    def same_as(self, obj: Any) -> bool:
        """Whether registering ``obj`` again under this name is the same registration (not a conflict)."""
        return obj == self.reference if isinstance(obj, str) else self._obj is obj

    def __repr__(self) -> str:
        return f"Entry({self.kind!r}, {self.name!r}, {self.reference or self._obj!r}, plugin={self.plugin!r})"


def _import_reference(reference: str, label: str) -> Any:
    """The object ``"package.module:attribute"`` names, or a one-line PluginError naming ``label``."""
    module_name, _, attribute = reference.partition(":")
    try:
        value: Any = importlib.import_module(module_name.strip())
        for part in attribute.strip().split("."):
            value = getattr(value, part)
    except Exception as exc:
        from genframe.util.text import describe, where

        raise PluginError(f"{label} is registered as {reference!r}, which could not be imported: "
                          f"{describe(exc)}{where(exc, module_name.strip())}") from exc
    return value


class Registry:
    """Maps (kind, name) to a component; ``add`` is what plugins call."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.current_plugin = "?"  # set by the plugin manager while a plugin registers

    def add(self, kind: str, name: str, obj: Any) -> None:
        """Register ``obj`` (or a ``"package.module:attribute"`` string naming it) as ``kind`` ``name``;
        duplicate names are a plugin conflict."""
        if kind not in self._entries:
            raise PluginError(
                f"plugin {self.current_plugin!r} registered unknown kind {kind!r}; "
                f"kinds are: {', '.join(KINDS)}"
            )
        if isinstance(obj, str) and not all(part.strip() for part in obj.partition(":")):
            # a ValueError, not a PluginError: the plugin that wrote it is skipped, the rest keep working
            raise ValueError(f"plugin {self.current_plugin!r} registered {kind} {name!r} as {obj!r}; a reference "
                              "names a module and an attribute, e.g. 'my_package.models:MyModel'")
        existing = self._entries[kind].get(name)
        if existing is not None and not existing.same_as(obj):
            raise PluginError(
                f"{kind} {name!r} is registered by both {existing.plugin!r} and "
                f"{self.current_plugin!r}; uninstall or block one of them (GENFRAME_PLUGINS)"
            )
        self._entries[kind][name] = Entry(kind, name, obj, self.current_plugin)

    def get(self, kind: str, name: str) -> Any:
        """The component ``name`` of ``kind``, or a clear error listing the known names."""
        return self.entry(kind, name).obj

    def entry(self, kind: str, name: str) -> Entry:
        known = self._entries.get(kind, {})
        if name in known:
            return known[name]
        hint = difflib.get_close_matches(name, list(known), n=1)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        listing = ", ".join(sorted(known)) or "none (is the plugin that provides it installed?)"
        raise UnknownComponentError(f"unknown {kind} {name!r}.{did_you_mean} Known {kind}s: {listing}")

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries.get(kind, {}))

    def entries(self) -> Iterator[Entry]:
        for kind in KINDS:
            yield from self._entries[kind].values()
