"""genframe's import graph, read from the source, and the rules it must keep (docs/architecture.md).

Every ``import`` counts, at module level or inside a function; only imports for type checkers (under
``if TYPE_CHECKING:``) do not. Rooms are ranked bottom first: a module imports only from its own room
or rooms below it, no two modules import each other (directly or around a circle), and a shipped
plugin imports only the public API. ``python tests/import_graph.py`` prints what breaks the rules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: bottom first; a module belongs to the room with the longest matching prefix
ROOMS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("genframe.version", "genframe.util", "genframe.contracts", "genframe.flows")),
    ("config", ("genframe.config",)),
    ("plugins", ("genframe.plugins",)),
    ("data", ("genframe.data",)),
    ("loggers", ("genframe.loggers",)),
    ("training", ("genframe.training",)),
    ("using", ("genframe.using",)),
    ("callbacks", ("genframe.callbacks",)),
    ("api", ("genframe", "genframe.testing")),
    ("cli", ("genframe.cli", "genframe.__main__")),
]

#: what a plugin may import from genframe: the package itself (its lazy public names) and the
#: conformance suite its tests run
PUBLIC_MODULES = ("genframe", "genframe.testing")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:`` (not ``if not TYPE_CHECKING:``, which runs)."""
    return ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def imports_of(path: Path, name: str, prefix: str = "genframe") -> set[str]:
    """The modules under ``prefix`` that ``path`` (module ``name``) imports, type-checking ones aside.
    ``from package import name`` counts as importing ``package.name`` when that is a module."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names if alias.name.split(".")[0] == prefix)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                if base.split(".")[0] == prefix:
                    found.add(base)
                    found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def graph(root: Path = REPO) -> dict[str, set[str]]:
    """module -> the genframe modules it imports (only names that are modules of the tree)."""
    files = {module_name(p, root): p for p in (root / "genframe").rglob("*.py")}
    return {name: {m for m in imports_of(path, name) if m in files and m != name} for name, path in files.items()}


def room_of(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(ROOMS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Each import of a module in a room above the importer's, as ``a -> b (room -> room)``."""
    bad = []
    for module, targets in sorted(edges.items()):
        for target in sorted(targets):
            if room_of(target) > room_of(module):
                bad.append(f"{module} -> {target} ({ROOMS[room_of(module)][0]} imports {ROOMS[room_of(target)][0]})")
    return bad


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return sorted(groups)


def private_imports(package_dir: Path) -> list[str]:
    """Each import by a plugin's code of a genframe module that is not public, as ``file: module``."""
    bad = []
    for path in sorted(package_dir.rglob("*.py")):
        name = module_name(path, package_dir.parent)
        for module in sorted(imports_of(path, name)):
            if module not in PUBLIC_MODULES and not any(module == f"{p}.{n}" for p in PUBLIC_MODULES
                                                        for n in _public_names()):
                bad.append(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {module}")
    return bad


def _public_names() -> list[str]:
    """The names ``genframe`` exports, read from its ``_FROM`` table (nothing is imported)."""
    tree = ast.parse((REPO / "genframe" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_FROM" for t in node.targets):
            return [name for names in ast.literal_eval(node.value).values() for name in names]
    raise AssertionError("genframe/__init__.py has no _FROM table")


def shipped_plugin_packages() -> list[Path]:
    """The code folders of the plugins the project ships: plugins/* and examples/plugins/*."""
    found = []
    for base in (REPO / "plugins", REPO / "examples" / "plugins"):
        for project in sorted(base.iterdir()) if base.is_dir() else []:
            found += [p.parent for p in project.glob("*/__init__.py") if not p.parent.name.endswith(".egg-info")]
    return found


if __name__ == "__main__":
    edges = graph()
    for line in upward_imports(edges):
        print("upward:", line)
    for group in circles(edges):
        print("circle:", " <-> ".join(group))
    for package in shipped_plugin_packages():
        for line in private_imports(package):
            print("private:", line)
