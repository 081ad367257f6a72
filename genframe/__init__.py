"""genframe: a plugin-based framework for generative models in PyTorch.

The public Python API; everything here is re-exported from the module that defines it.
"""

__version__ = "0.1.0"

from genframe.api import LoadedModel, get_recipe, load, recipe_config, sample_to_files  # noqa: E402
from genframe.config import RecipeConfig, Section, TrainerConfig  # noqa: E402
from genframe.evaluate import evaluate  # noqa: E402
from genframe.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    GenframeError,
    PluginError,
    RunError,
    UnknownComponentError,
)
from genframe.hookspecs import hookimpl  # noqa: E402
from genframe.interfaces import Dataset, Logger, Model, Recipe, SampleOutput, Sampler, Trainer  # noqa: E402
from genframe.plugins import get_host, load_plugins, reset_host  # noqa: E402
from genframe.run import RunContext, RunResult, TrainingRun, train  # noqa: E402

__all__ = [
    "__version__", "CheckpointError", "ConfigError", "DataError", "Dataset", "GenframeError", "LoadedModel",
    "Logger", "Model", "PluginError", "Recipe", "RecipeConfig", "RunContext", "RunError", "RunResult",
    "SampleOutput", "Sampler", "Section", "Trainer", "TrainerConfig", "TrainingRun", "UnknownComponentError",
    "evaluate", "get_host", "get_recipe", "hookimpl", "load", "load_plugins", "recipe_config", "reset_host",
    "sample_to_files", "train",
]
