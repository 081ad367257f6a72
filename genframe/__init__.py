"""genframe: a plugin-based framework for generative models in PyTorch.

The public Python API. Names are re-exported lazily from the modules that define them: importing
``genframe`` imports neither torch nor pydantic, so the CLI starts fast and a plugin's entry point
can be read cheaply.
"""

from __future__ import annotations

import importlib
import sys
import types

# Not ``from typing import ...``: typing takes milliseconds to import, and an interrupt then, before the
# CLI's handler (``genframe/__main__.py``) runs, would print a traceback. Type checkers know this idiom.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

# module -> the public names it defines
_FROM = {
    "genframe.contracts.components": (
        "Dataset", "ExampleBytes", "Model", "Recipe", "SampleOutput", "Sampler", "Trainer",
    ),
    "genframe.contracts.listeners": ("Callback", "Control", "Listener", "Logger"),
    "genframe.contracts.context": ("RunContext", "RunResult"),
    "genframe.contracts.errors": (
        "CallbackError", "CheckpointError", "ConfigError", "DataError", "DivergenceError", "GenframeError",
        "PluginError", "RunError", "RunInterrupted", "UnknownComponentError",
    ),
    "genframe.contracts.hookspecs": ("hookimpl",),
    "genframe.config.sections": (
        "CallbacksConfig", "DataConfig", "LoggingConfig", "RecipeConfig", "Section", "TrainerConfig",
    ),
    "genframe.plugins.host": ("get_host", "load_plugins", "reset_host"),
    "genframe.plugins.recipes": ("get_recipe", "recipe_config"),
    "genframe.training.run": ("TrainingRun", "train"),
    "genframe.training.schedules": ("RateSchedule", "cosine_rate", "rate_schedule_problem"),
    "genframe.flows.paths": ("draw_path_times", "ot_pairing", "sinkhorn_plan", "straight_path"),
    "genframe.flows.solvers": ("ADAPTIVE_EVALS_PER_STEP", "SOLVER_EVALS_PER_STEP", "integrate_adaptive",
                               "integrate_fixed", "solver_steps"),
    "genframe.flows.likelihood": ("flow_log_likelihood",),
    "genframe.using.load": ("LoadedModel", "load"),
    "genframe.using.sample": ("sample_to_files",),
    "genframe.using.evaluate": ("evaluate",),
    "genframe.using.export": ("export_model",),
    "genframe.using.generation": ("generate_in_chunks",),
    "genframe.util.atomic": ("atomic_write", "atomic_write_bytes", "atomic_write_text"),
    "genframe.util.text": ("describe", "one_line"),
    "genframe.util.shares": ("StepsOrShare", "steps_of"),
    "genframe.util.generators": ("restore_generator",),
    "genframe.util.openmp": ("usable_cores",),
    "genframe.util.deprecation": ("GenframeDeprecationWarning", "deprecate", "moved_modules"),
}
# public name -> the module that defines it
_EXPORTS = {name: module for module, names in _FROM.items() for name in names}

__all__ = ["__version__", *sorted(_EXPORTS)]

# Modules that moved into rooms in 0.2 (docs/architecture.md): their old paths keep working until 0.4,
# each with one deprecation warning (docs/compatibility.md). A module that was split names its new homes,
# where each old name is looked up in order.
_MOVED: dict[str, str | tuple[str, ...]] = {
    "api": ("using.load", "using.sample", "using.outputs", "plugins.recipes"), "atomic": "util.atomic",
    "builtins": "plugins.builtins", "callback_list": ("training.listeners", "config.callbacks"),
    "checkpoint": "training.checkpoint", "classifier": ("using.classifier", "util.resources"),
    "cli_scoring": "cli.scoring", "completion": ("using.completion", "using.completion_files"),
    "context": "contracts.context", "detection": "using.detection", "distributed": "training.distributed",
    "errors": "contracts.errors", "evaluate": "using.evaluate", "export": ("using.export", "using.exported"),
    "generation": "using.generation", "heartbeat": "training.heartbeat", "histogram": "using.histogram",
    "hookspecs": "contracts.hookspecs", "images": "util.images", "inputs": "using.inputs",
    "interfaces": "contracts.components", "loop": "training.loop", "masks": "using.masks",
    "metrics": "using.metrics", "openmp": "util.openmp", "plot": "using.plot",
    "pluginfaults": ("plugins.faults", "util.text"), "policies": "callbacks", "policies.ema": "callbacks.ema",
    "policies.evaluation": "callbacks.evaluation", "policies.guard": "callbacks.guard",
    "policies.keep_best": "callbacks.keep_best", "preflight": ("training.preflight", "util.resources"),
    "previews": ("training.previews", "config.batches"), "recipes": "plugins.recipes",
    "registry": "plugins.registry", "reproducible": "util.reproducible", "rewind": "training.rewind",
    "run": "training.run", "rundir": "training.rundir", "runsetup": "training.runsetup",
    "runstate": "training.runstate", "scoring": ("using.scoring", "using.scoring_files"), "signals": "util.signals",
    "sweep": "using.sweep", "tomlwrite": "util.tomlwrite",
}


def _keep_old_paths() -> None:
    from genframe.util.deprecation import moved_modules

    def where(new: str | tuple[str, ...]) -> str | tuple[str, ...]:
        return f"genframe.{new}" if isinstance(new, str) else tuple(f"genframe.{home}" for home in new)

    moved_modules({f"genframe.{old}": where(new) for old, new in _MOVED.items()}, since="0.2", until="0.4")


_keep_old_paths()


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from genframe.version import genframe_version

        return genframe_version()
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genframe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


class _Package(types.ModuleType):
    """Keeps an export that shares its module's name (``genframe.evaluate``, the function) what it is when
    that submodule is first imported: the import system then sets the package attribute to the submodule."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from genframe.config.sections import (  # noqa: F401
        CallbacksConfig,
        DataConfig,
        LoggingConfig,
        RecipeConfig,
        Section,
        TrainerConfig,
    )
    from genframe.contracts.components import (  # noqa: F401
        Dataset,
        ExampleBytes,
        Model,
        Recipe,
        SampleOutput,
        Sampler,
        Trainer,
    )
    from genframe.contracts.context import RunContext, RunResult  # noqa: F401
    from genframe.contracts.errors import (  # noqa: F401
        CallbackError,
        CheckpointError,
        ConfigError,
        DataError,
        DivergenceError,
        GenframeError,
        PluginError,
        RunError,
        RunInterrupted,
        UnknownComponentError,
    )
    from genframe.contracts.hookspecs import hookimpl  # noqa: F401
    from genframe.contracts.listeners import Callback, Control, Listener, Logger  # noqa: F401
    from genframe.plugins.host import get_host, load_plugins, reset_host  # noqa: F401
    from genframe.plugins.recipes import get_recipe, recipe_config  # noqa: F401
    from genframe.training.run import TrainingRun, train  # noqa: F401
    from genframe.using.evaluate import evaluate  # noqa: F401
    from genframe.using.export import export_model  # noqa: F401
    from genframe.using.generation import generate_in_chunks  # noqa: F401
    from genframe.using.load import LoadedModel, load  # noqa: F401
    from genframe.using.sample import sample_to_files  # noqa: F401
    from genframe.util.atomic import atomic_write, atomic_write_bytes, atomic_write_text  # noqa: F401
    from genframe.util.deprecation import GenframeDeprecationWarning, deprecate, moved_modules  # noqa: F401
    from genframe.util.text import describe, one_line  # noqa: F401
