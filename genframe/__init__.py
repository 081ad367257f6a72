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
    "LoadedModel": "genframe.api", "get_recipe": "genframe.recipes", "load": "genframe.api",
    "recipe_config": "genframe.recipes", "sample_to_files": "genframe.api",
    "Callback": "genframe.callbacks", "Control": "genframe.callbacks",
    "RecipeConfig": "genframe.config", "Section": "genframe.config", "TrainerConfig": "genframe.config",
    "LoggingConfig": "genframe.config", "DataConfig": "genframe.config", "CallbacksConfig": "genframe.config",
    "RunContext": "genframe.context", "RunResult": "genframe.context",
    "CallbackError": "genframe.errors", "CheckpointError": "genframe.errors", "ConfigError": "genframe.errors",
    "DataError": "genframe.errors", "DivergenceError": "genframe.errors", "GenframeError": "genframe.errors",
    "PluginError": "genframe.errors", "RunError": "genframe.errors", "RunInterrupted": "genframe.errors",
    "UnknownComponentError": "genframe.errors",
    "evaluate": "genframe.evaluate", "export_model": "genframe.export",
    "hookimpl": "genframe.hookspecs",
    "Dataset": "genframe.interfaces", "Logger": "genframe.interfaces", "Model": "genframe.interfaces",
    "Recipe": "genframe.interfaces", "SampleOutput": "genframe.interfaces", "Sampler": "genframe.interfaces",
    "Trainer": "genframe.interfaces",
    "get_host": "genframe.plugins", "load_plugins": "genframe.plugins", "reset_host": "genframe.plugins",
    "TrainingRun": "genframe.run", "train": "genframe.run",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


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
    from genframe.api import LoadedModel, load, sample_to_files  # noqa: F401
    from genframe.callbacks import Callback, Control  # noqa: F401
    from genframe.config import CallbacksConfig, DataConfig, LoggingConfig, RecipeConfig, Section, TrainerConfig  # noqa: F401
    from genframe.context import RunContext, RunResult  # noqa: F401
    from genframe.errors import (CallbackError, CheckpointError, ConfigError, DataError, DivergenceError,  # noqa: F401
                                 GenframeError, PluginError, RunError, RunInterrupted, UnknownComponentError)
    from genframe.evaluate import evaluate  # noqa: F401
    from genframe.export import export_model  # noqa: F401
    from genframe.hookspecs import hookimpl  # noqa: F401
    from genframe.interfaces import Dataset, Logger, Model, Recipe, SampleOutput, Sampler, Trainer  # noqa: F401
    from genframe.plugins import get_host, load_plugins, reset_host  # noqa: F401
    from genframe.recipes import get_recipe, recipe_config  # noqa: F401
    from genframe.run import TrainingRun, train  # noqa: F401
