"""The core's own plugin: registers the built-in datasets, loggers and callbacks the same way any plugin would.

Each is registered by reference (``"module:Class"``), so listing components imports none of them.
"""

from __future__ import annotations

from genframe.contracts.hookspecs import hookimpl

# (kind, name, "module:Class")
BUILT_INS = (
    ("dataset", "mnist", "genframe.data.mnist:MNIST"),
    ("dataset", "fashion_mnist", "genframe.data.mnist:FashionMNIST"),
    ("dataset", "imagefolder", "genframe.data.imagefolder:ImageFolder"),
    ("dataset", "tensorfile", "genframe.data.tensorfile:TensorFile"),
    ("logger", "console", "genframe.loggers.console:ConsoleLogger"),
    ("logger", "jsonl", "genframe.loggers.jsonl:JsonlLogger"),
    ("logger", "wandb", "genframe.loggers.wandb_logger:WandbLogger"),
    ("logger", "mlflow", "genframe.loggers.mlflow_logger:MlflowLogger"),
    ("logger", "tensorboard", "genframe.loggers.tensorboard_logger:TensorBoardLogger"),
    ("callback", "divergence_guard", "genframe.callbacks.guard:DivergenceGuard"),
    ("callback", "evaluation", "genframe.callbacks.evaluation:Evaluation"),
    ("callback", "keep_best", "genframe.callbacks.keep_best:KeepBest"),
    ("callback", "ema", "genframe.callbacks.ema:EMA"),
)


@hookimpl
def genframe_register(registry) -> None:
    for kind, name, reference in BUILT_INS:
        registry.add(kind, name, reference)
