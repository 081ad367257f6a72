"""One-line descriptions of what a plugin got wrong, for the plugin manager's warnings and errors.

A user who sees a plugin fail needs three things on one line: what went wrong, where in the
plugin's own code (not in the library it called), and what was probably meant (a misspelled hook,
an argument a hook never passes). The full traceback stays available for ``genframe plugins
--traceback``.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from genframe.contracts import hookspecs

# Built from the spec module itself, never from ``dir(pm.hook)``: pluggy adds a caller there for
# every implemented name, misspelled ones included.
HOOK_NAMES = tuple(sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, "genframe_spec")))
LIFECYCLE_HOOKS = tuple(name for name in HOOK_NAMES if name != "genframe_register")


def unknown_hook(name: str) -> str:
    """Names one misspelled hook with the closest real one, or the real ones when none is close."""
    # compared without the shared "genframe_" prefix, which would make every name look close
    tails = {hook.removeprefix("genframe_"): hook for hook in HOOK_NAMES}
    hint = difflib.get_close_matches(name.removeprefix("genframe_"), list(tails), n=1)
    if hint:
        return f"unknown hook {name} (did you mean {tails[hint[0]]}?)"
    return f"unknown hook {name} (genframe's hooks: {', '.join(HOOK_NAMES)})"


def _defined_at(function: Any) -> str:
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    return f" (at {code.co_filename}:{code.co_firstlineno})" if code is not None else ""


def bad_arguments(pm: Any, plugin: Any) -> str | None:
    """Why pluggy refused ``plugin``, when the reason is a hook implementation taking an argument its
    hook never passes (pluggy's own message spans lines and names neither the fix nor the file)."""
    problems = []
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        hook = (opts or {}).get("specname") or attr
        if opts is None or hook not in HOOK_NAMES:
            continue
        passed = list(inspect.signature(getattr(hookspecs, hook)).parameters)
        function = getattr(plugin, attr)
        try:
            params = list(inspect.signature(function).parameters.values())
        except (TypeError, ValueError):
            continue
        for param in params:  # what pluggy checks: positional arguments without a default
            if param.default is not param.empty or param.name == "self" or param.kind not in (
                    param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) or param.name in passed:
                continue
            hint = difflib.get_close_matches(param.name, passed, n=1)
            meant = f"did you mean {hint[0]!r}?" if hint else f"it passes {', '.join(passed)}"
            problems.append(f"{hook}() takes argument {param.name!r} that the hook does not pass "
                            f"({meant}){_defined_at(function)}")
    return "; ".join(problems) or None
