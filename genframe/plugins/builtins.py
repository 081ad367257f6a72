"""The core's own plugin: registers the built-in datasets, loggers and callbacks the same way any plugin would.

Each is registered by reference (``"module:Class"``), so listing components imports none of them.
"""

from __future__ import annotations

from genframe.contracts.hookspecs import hookimpl


@hookimpl
def genframe_register(registry) -> None:
    registry.add("dataset", "mnist", "genframe.data.mnist:MNIST")
    registry.add("dataset", "fashion_mnist", "genframe.data.mnist:FashionMNIST")
    registry.add("dataset", "imagefolder", "genframe.data.imagefolder:ImageFolder")
    registry.add("dataset", "tensorfile", "genframe.data.tensorfile:TensorFile")
    registry.add("logger", "console", "genframe.loggers.console:ConsoleLogger")
    registry.add("logger", "jsonl", "genframe.loggers.jsonl:JsonlLogger")
    registry.add("logger", "wandb", "genframe.loggers.wandb_logger:WandbLogger")
    registry.add("logger", "mlflow", "genframe.loggers.mlflow_logger:MlflowLogger")
    registry.add("logger", "tensorboard", "genframe.loggers.tensorboard_logger:TensorBoardLogger")
    registry.add("callback", "divergence_guard", "genframe.callbacks.guard:DivergenceGuard")
    registry.add("callback", "evaluation", "genframe.callbacks.evaluation:Evaluation")
    registry.add("callback", "keep_best", "genframe.callbacks.keep_best:KeepBest")
    registry.add("callback", "ema", "genframe.callbacks.ema:EMA")
