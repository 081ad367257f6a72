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

# public name -> the module that defines it
_EXPORTS = {
    "LoadedModel": "genframe.using.load", "get_recipe": "genframe.plugins.recipes", "load": "genframe.using.load",
    "recipe_config": "genframe.plugins.recipes", "sample_to_files": "genframe.using.sample",
    "Callback": "genframe.contracts.listeners", "Control": "genframe.contracts.listeners",
    "Listener": "genframe.contracts.listeners", "Logger": "genframe.contracts.listeners",
    "RecipeConfig": "genframe.config.sections", "Section": "genframe.config.sections", "TrainerConfig": "genframe.config.sections",
    "LoggingConfig": "genframe.config.sections", "DataConfig": "genframe.config.sections", "CallbacksConfig": "genframe.config.sections",
    "RunContext": "genframe.contracts.context", "RunResult": "genframe.contracts.context",
    "CallbackError": "genframe.contracts.errors", "CheckpointError": "genframe.contracts.errors", "ConfigError": "genframe.contracts.errors",
    "DataError": "genframe.contracts.errors", "DivergenceError": "genframe.contracts.errors", "GenframeError": "genframe.contracts.errors",
    "PluginError": "genframe.contracts.errors", "RunError": "genframe.contracts.errors", "RunInterrupted": "genframe.contracts.errors",
    "UnknownComponentError": "genframe.contracts.errors",
    "evaluate": "genframe.using.evaluate", "export_model": "genframe.using.export",
    "hookimpl": "genframe.contracts.hookspecs",
    "Dataset": "genframe.contracts.components", "ExampleBytes": "genframe.contracts.components", "Model": "genframe.contracts.components",
    "Recipe": "genframe.contracts.components", "SampleOutput": "genframe.contracts.components", "Sampler": "genframe.contracts.components",
    "Trainer": "genframe.contracts.components",
    "atomic_write": "genframe.util.atomic", "atomic_write_bytes": "genframe.util.atomic",
    "atomic_write_text": "genframe.util.atomic", "one_line": "genframe.util.text", "describe": "genframe.util.text",
    "generate_in_chunks": "genframe.using.generation",
    "deprecate": "genframe.util.deprecation", "moved_modules": "genframe.util.deprecation",
    "GenframeDeprecationWarning": "genframe.util.deprecation",
    "get_host": "genframe.plugins.host", "load_plugins": "genframe.plugins.host", "reset_host": "genframe.plugins.host",
    "TrainingRun": "genframe.training.run", "train": "genframe.training.run",
}

__all__ = ["__version__", *sorted(_EXPORTS)]

# Modules that moved into rooms in 0.2 (docs/architecture.md): their old paths keep working until 0.4,
# each with one deprecation warning (docs/compatibility.md).
_MOVED = {
    "api": "using.load", "atomic": "util.atomic", "builtins": "plugins.builtins",
    "callback_list": "training.listeners", "checkpoint": "training.checkpoint", "classifier": "using.classifier",
    "cli_scoring": "cli.scoring", "completion": "using.completion", "context": "contracts.context",
    "detection": "using.detection", "distributed": "training.distributed", "errors": "contracts.errors",
    "evaluate": "using.evaluate", "export": "using.export", "generation": "using.generation",
    "heartbeat": "training.heartbeat", "histogram": "using.histogram", "hookspecs": "contracts.hookspecs",
    "images": "util.images", "inputs": "using.inputs", "interfaces": "contracts.components", "loop": "training.loop",
    "masks": "using.masks", "metrics": "using.metrics", "openmp": "util.openmp", "plot": "using.plot",
    "pluginfaults": "plugins.faults", "policies": "callbacks", "policies.ema": "callbacks.ema",
    "policies.evaluation": "callbacks.evaluation", "policies.guard": "callbacks.guard",
    "policies.keep_best": "callbacks.keep_best", "preflight": "training.preflight", "previews": "training.previews",
    "recipes": "plugins.recipes", "registry": "plugins.registry", "reproducible": "util.reproducible",
    "rewind": "training.rewind", "run": "training.run", "rundir": "training.rundir", "runsetup": "training.runsetup",
    "runstate": "training.runstate", "scoring": "using.scoring", "signals": "util.signals", "sweep": "using.sweep",
    "tomlwrite": "util.tomlwrite",
}


# Modules that were split: each old name is looked up in these, in order.
_SPLIT = {
    "api": ("using.load", "using.sample", "using.outputs", "plugins.recipes"),
    "completion": ("using.completion", "using.completion_files"), "scoring": ("using.scoring", "using.scoring_files"),
    "export": ("using.export", "using.exported"), "previews": ("training.previews", "config.batches"),
    "pluginfaults": ("plugins.faults", "util.text"), "callback_list": ("training.listeners", "config.callbacks"),
    "preflight": ("training.preflight", "util.resources"), "classifier": ("using.classifier", "util.resources"),
}


def _keep_old_paths() -> None:
    from genframe.util.deprecation import moved_modules

    moves: dict[str, str | tuple[str, ...]] = {f"genframe.{old}": f"genframe.{new}" for old, new in _MOVED.items()}
    moves.update({f"genframe.{old}": tuple(f"genframe.{new}" for new in homes) for old, homes in _SPLIT.items()})
    moved_modules(moves, since="0.2", until="0.4")


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
