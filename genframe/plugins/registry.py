"""Components by kind and name, filled by plugins through ``genframe_register``.

A component is registered either as the object itself or as a ``"package.module:attribute"`` string,
imported the first time the component is used: listing plugins or printing a config then imports no
torch. Unknown names fail with the list of known ones and a did-you-mean suggestion.

A plugin registers all or nothing: its additions are held until its ``genframe_register`` returns, and
dropped whole if it raised or named an unknown kind. Two plugins may offer one name: both are kept,
``PLUGIN:NAME`` picks one, and the bare name is refused with the qualified names to pick from, unless the
run being resumed recorded which plugin's it used (:meth:`Registry.choosing`).
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from genframe.contracts.errors import PluginError, UnknownComponentError

KINDS = ("recipe", "dataset", "model", "logger", "callback")
#: Kinds genframe 0.1 had, and what took their place (a plugin registering them is skipped, with this fix).
RETIRED_KINDS = {
    "sampler": "since genframe 0.2 a recipe builds its sampler (Recipe.build_sampler): register the recipe only",
    "trainer": "since genframe 0.2 a recipe builds its trainer (Recipe.build_trainer): register the recipe only",
}
#: The plugin name the core's own components are qualified with (``genframe:mnist``).
CORE_PLUGIN = "genframe"


class AmbiguousComponentError(UnknownComponentError):
    """A bare name that two or more plugins offer: the user must pick one by its qualified name."""


class Choices:
    """The plugins a run's bare names resolved to (``{"dataset:spiral": "shapes"}``): recorded in its
    checkpoints, and followed when it resumes, where a later plugin may have made a bare name ambiguous."""

    def __init__(self, recorded: dict[str, str] | None = None) -> None:
        self.recorded = dict(recorded or {})
        self.used: dict[str, str] = {}


_CHOICES: ContextVar[Choices | None] = ContextVar("genframe_choices", default=None)


def recorded_choices(record: dict[str, Any]) -> dict[str, str]:
    """The plugins a checkpoint's (or an export's) bare names were: its ``components``, and for one written before
    those were recorded, at least its recipe's (``plugin``)."""
    choices = {f"recipe:{record['recipe']}": record["plugin"]} if record.get("plugin") and record.get("recipe") else {}
    return {**choices, **(record.get("components") or {})}


def follow_run(record: dict[str, Any]) -> Choices:
    """The choices of the run ``record`` (a checkpoint or export record) came from; inside a command that
    follows runs (:func:`following_runs`), they also join the command's own."""
    recorded = recorded_choices(record)
    active = _CHOICES.get()
    if active is not None:
        for key, plugin in recorded.items():
            active.recorded.setdefault(key, plugin)
    return Choices(recorded)


def following_runs(function: Any) -> Any:
    """Decorate a command that loads a run and then names its components (its dataset, its recipe): inside it,
    a bare name two plugins now offer resolves to the plugin the run recorded."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _CHOICES.get() is not None:
            return function(*args, **kwargs)
        with Registry.choosing(Choices()):
            return function(*args, **kwargs)

    return wrapper


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
    """Maps (kind, name) to the components plugins offer under that name; ``add`` is what plugins call."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, list[Entry]]] = {kind: {} for kind in KINDS}
        self.current_plugin = "?"  # set by the plugin manager while a plugin registers
        self._pending: list[Entry] | None = None  # a plugin's additions, until it has registered whole

    @contextlib.contextmanager
    def registering(self, plugin: str) -> Iterator[None]:
        """Hold ``plugin``'s additions while it registers; keep them all if it returns, none if it raises."""
        self.current_plugin, self._pending = plugin, []
        try:
            yield
            pending = self._pending
            self._pending = None
            for entry in pending:
                self._entries[entry.kind].setdefault(entry.name, []).append(entry)
        finally:
            self.current_plugin, self._pending = "?", None

    def add(self, kind: str, name: str, obj: Any) -> None:
        """Register ``obj`` (or a ``"package.module:attribute"`` string naming it) as ``kind`` ``name``.
        Another plugin may offer the same name (both are kept); one plugin offering one name twice is an error."""
        if kind not in self._entries:
            fix = RETIRED_KINDS.get(kind, f"kinds are: {', '.join(KINDS)}")
            raise PluginError(f"{self._who()}registered unknown kind {kind!r}; {fix}")
        if not isinstance(name, str) or not name or ":" in name:
            raise PluginError(f"{self._who()}registered {kind} {name!r}; a name is a non-empty "
                              "string without ':' (genframe writes PLUGIN:NAME to pick between plugins)")
        if isinstance(obj, str) and not all(part.strip() for part in obj.partition(":")):
            raise PluginError(f"{self._who()}registered {kind} {name!r} as {obj!r}; a reference "
                              "names a module and an attribute, e.g. 'my_package.models:MyModel'")
        entry = Entry(kind, name, obj, self.current_plugin)
        offers = self._offers(kind, name)
        own = [e for e in offers if e.plugin == entry.plugin]
        if own and not own[0].same_as(obj):
            raise PluginError(f"{self._who()}registered {kind} {name!r} twice, as two different components; give "
                              "one of them another name")
        if own or any(e.same_as(obj) for e in offers):  # the very same component again (a shared helper): no choice
            return
        if self._pending is not None:
            self._pending.append(entry)
        else:
            self._entries[kind].setdefault(name, []).append(entry)

    def _who(self) -> str:
        """Who did it, for an error: nobody while a plugin registers (the plugin manager names the plugin)."""
        return "it " if self._pending is not None else f"plugin {self.current_plugin!r} "

    def _offers(self, kind: str, name: str) -> list[Entry]:
        """Every entry under ``name``, those of the plugin registering now included."""
        pending = [e for e in self._pending or [] if e.kind == kind and e.name == name]
        return self._entries.get(kind, {}).get(name, []) + pending

    def get(self, kind: str, name: str) -> Any:
        """The component ``name`` (bare, or ``PLUGIN:NAME``) of ``kind``, or a clear error listing the known names."""
        return self.entry(kind, name).obj

    def entry(self, kind: str, name: str) -> Entry:
        """The entry ``name`` names: ``PLUGIN:NAME`` that plugin's, a bare name the one plugin offering it (or
        the one a resumed run recorded); unknown and ambiguous names are one-line errors."""
        plugin, _, bare = name.rpartition(":")
        offers = self._entries.get(kind, {}).get(bare, [])
        if plugin:
            chosen = [e for e in offers if e.plugin == plugin]
            if not chosen:
                raise UnknownComponentError(self._unknown(kind, name, offers))
            return self._used(chosen[0])
        if len(offers) == 1:
            return self._used(offers[0])
        if not offers:
            raise UnknownComponentError(self._unknown(kind, name, offers))
        choices = _CHOICES.get()
        recorded = choices.recorded.get(f"{kind}:{name}") if choices else None
        chosen = [e for e in offers if e.plugin == recorded]
        if chosen:
            return self._used(chosen[0])
        options = ", ".join(f"{e.plugin}:{name}" for e in offers)
        raise AmbiguousComponentError(f"{kind} {name!r} is offered by {len(offers)} plugins "
                                      f"({', '.join(e.plugin for e in offers)}); name the one you mean: {options}")

    def _unknown(self, kind: str, name: str, offers: list[Entry]) -> str:
        if offers:  # the bare name exists, the plugin named does not offer it
            options = ", ".join(f"{e.plugin}:{e.name}" for e in offers)
            return f"unknown {kind} {name!r}: no such plugin offers it. Known: {options}"
        known = self.names(kind)
        hint = difflib.get_close_matches(name.rpartition(":")[2], known, n=1)
        did_you_mean = f" Did you mean {hint[0]!r}?" if hint else ""
        listing = ", ".join(known) or "none (is the plugin that provides it installed?)"
        return f"unknown {kind} {name!r}.{did_you_mean} Known {kind}s: {listing}"

    @staticmethod
    def _used(entry: Entry) -> Entry:
        choices = _CHOICES.get()
        if choices is not None:
            choices.used[f"{entry.kind}:{entry.name}"] = entry.plugin
        return entry

    @staticmethod
    @contextlib.contextmanager
    def choosing(choices: Choices) -> Iterator[Choices]:
        """Inside: bare names resolve as ``choices.recorded`` says where two plugins offer them, and every
        name resolved is noted in ``choices.used`` (what a run records in its checkpoints)."""
        token = _CHOICES.set(choices)
        try:
            yield choices
        finally:
            _CHOICES.reset(token)

    def names(self, kind: str) -> list[str]:
        """The bare names of ``kind`` (once each, even when several plugins offer one)."""
        return sorted(self._entries.get(kind, {}))

    def ambiguous(self, kind: str) -> dict[str, list[str]]:
        """Bare names of ``kind`` that several plugins offer, with the qualified names to pick from."""
        return {name: [f"{e.plugin}:{name}" for e in offers]
                for name, offers in sorted(self._entries.get(kind, {}).items()) if len(offers) > 1}

    def entries(self) -> Iterator[Entry]:
        for kind in KINDS:
            for offers in self._entries[kind].values():
                yield from offers
