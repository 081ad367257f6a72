"""Components by kind and name, filled by plugins through ``genframe_register``.

Unknown names fail with the list of known ones and a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from genframe.errors import PluginError, UnknownComponentError

KINDS = ("recipe", "dataset", "model", "logger", "callback")


@dataclass(frozen=True)
class Entry:
    """One registered component and the plugin that provided it."""

    kind: str
    name: str
    obj: Any
    plugin: str


class Registry:
    """Maps (kind, name) to a component; ``add`` is what plugins call."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.current_plugin = "?"  # set by the plugin manager while a plugin registers

    def add(self, kind: str, name: str, obj: Any) -> None:
        """Register ``obj`` as ``kind`` ``name``; duplicate names are a plugin conflict."""
        if kind not in self._entries:
            raise PluginError(
                f"plugin {self.current_plugin!r} registered unknown kind {kind!r}; "
                f"kinds are: {', '.join(KINDS)}"
            )
        existing = self._entries[kind].get(name)
        if existing is not None and existing.obj is not obj:
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
