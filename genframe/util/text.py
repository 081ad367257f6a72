"""One-line descriptions of errors for users: the message on one line, and where in the user's or plugin's
own code it was raised (not in the library it called).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, whatever the exception printed."""
    return one_line(f"{type(exc).__name__}: {exc}")


def traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _code_roots(module_name: str) -> list[str]:
    """The file, or the package folders, of the top-level module that ``module_name`` belongs to."""
    top = module_name.split(".")[0]
    module = sys.modules.get(top)
    if module is not None:
        folders, file = list(getattr(module, "__path__", None) or []), getattr(module, "__file__", None)
    else:  # its import failed: ask the finder, which imports nothing for a top-level name
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return []
        if spec is None:
            return []
        folders, file = list(spec.submodule_search_locations or []), spec.origin
    return [os.path.abspath(p) for p in (folders or [file]) if p]


def _inside(path: str, roots: list[str]) -> bool:
    path = os.path.abspath(path)
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def where(exc: BaseException, module_name: str | None = None) -> str:
    """`` (at file:line)``: the innermost frame in the plugin's own code (``module_name``'s package)
    when it is in the traceback, else the innermost frame of real code; empty when there is none."""
    if isinstance(exc, SyntaxError) and exc.filename:  # the broken file never ran: not in the traceback
        return f" (at {exc.filename}:{exc.lineno})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    roots = _code_roots(module_name) if module_name else []
    own = [f for f in frames if _inside(f.filename, roots)]
    frames = own or frames
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
