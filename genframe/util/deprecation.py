"""Retiring names without breaking their users: one versioned helper for the core and plugins alike.

``deprecate(what, since=..., until=..., instead=...)`` warns once per call site with the version that
deprecated ``what`` and the version that removes it; once the package's own version reaches ``until`` it
raises instead, so a deprecation cannot outlive its promise unnoticed (the tests import every module).
``moved_modules({old: new}, since=..., until=...)`` keeps old import paths working, each with one such
warning; ``move_setting`` reads a renamed setting under its new name, with one too.
The policy these serve is docs/compatibility.md.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

# Imported by every ``import genframe`` (the moved-module finder), so it imports nothing heavy: no
# dataclasses (which pull in inspect), no typing at run time.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from importlib.machinery import ModuleSpec
    from typing import Any


class GenframeDeprecationWarning(DeprecationWarning):
    """Something a user's code, config or plugin relies on goes in a named later version."""


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def deprecate(what: str, *, since: str, until: str, instead: str, stacklevel: int = 2,
              current: str | None = None) -> None:
    """Warn that ``what`` goes in version ``until``, saying what to do ``instead``; past ``until``, raise.

    ``current`` is the version to compare with (a plugin passes its own; default: genframe's)."""
    message = f"{what} is deprecated since genframe {since} and goes in {until}: {instead}"
    if current is None:
        from genframe.version import genframe_version

        current = genframe_version()
    if _version_tuple(current) >= _version_tuple(until):
        raise RuntimeError(f"{message} (this is {current}: remove the deprecated code)")
    warnings.warn(message, GenframeDeprecationWarning, stacklevel=stacklevel + 1)


class _MovedModuleFinder:
    """Answers imports of old module paths with the module now at the new path, after one warning."""

    def __init__(self, moves: dict[str, str | tuple[str, ...]], since: str, until: str,
                 current: str | None) -> None:
        self.moves, self.since, self.until, self.current = moves, since, until, current
        self.specs: dict[int, Any] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        """A meta path finder's one method: a spec for an old name, None for any other."""
        if fullname not in self.moves:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        new = self.moves[spec.name]
        homes = (new,) if isinstance(new, str) else tuple(new)
        deprecate(f"importing {spec.name}", since=self.since, until=self.until, current=self.current,
                  instead=f"import from {' or '.join(homes)} (or the public names from the package itself)",
                  stacklevel=2)
        if len(homes) == 1:
            module = importlib.import_module(homes[0])
            self.specs[id(module)] = module.__spec__  # the import system overwrites it with the old name's
            return module
        return _merged(spec.name, homes)

    def exec_module(self, module: ModuleType) -> None:
        """The module at the new path ran already; ``sys.modules`` maps the old name to it. Its own spec
        is put back, for the tools that read it (``importlib.resources``, reload)."""
        if id(module) in self.specs:
            module.__spec__ = self.specs.pop(id(module))


def _merged(name: str, homes: tuple[str, ...]) -> ModuleType:
    """A module standing for one that was split: each name is looked up in ``homes``, in order."""
    module = ModuleType(name, f"{name} was split into {', '.join(homes)}")

    def __getattr__(attribute: str) -> Any:
        for home in homes:
            found = getattr(importlib.import_module(home), attribute, _MISSING)
            if found is not _MISSING:
                return found
        raise AttributeError(f"module {name!r} has no attribute {attribute!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


_MISSING = object()


def moved_modules(moves: dict[str, str | tuple[str, ...]], *, since: str, until: str,
                  current: str | None = None) -> None:
    """Keep ``import OLD`` working for every ``OLD: NEW`` in ``moves``, with a deprecation warning each; a
    module that was split names its new homes as a tuple, looked up in order."""
    # first: a moved package's old name has the new package's __path__, where the path finder would load
    # a second copy of each submodule under the old name
    sys.meta_path.insert(0, _MovedModuleFinder(dict(moves), since, until, current))


def move_setting(data: dict[str, Any], old: str, new: str, *, since: str, until: str,
                 current: str | None = None) -> bool:
    """Read dotted setting ``old`` of plain config ``data`` as ``new`` (unless ``new`` is set too), with a
    deprecation warning; True if it was there. For a config's ``renamed_settings`` table."""
    *parents, leaf = old.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        return False
    value = node.pop(leaf)
    deprecate(f"the setting {old}", since=since, until=until, current=current, instead=f"write {new}",
              stacklevel=3)
    target = data
    *new_parents, new_leaf = new.split(".")
    for part in new_parents:
        target = target.setdefault(part, {})
    target.setdefault(new_leaf, value)
    return True
