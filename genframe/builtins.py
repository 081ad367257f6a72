"""The core's own plugin: registers the built-in datasets, loggers and callbacks the same way any plugin would."""

from __future__ import annotations

from genframe.hookspecs import hookimpl


@hookimpl
def genframe_register(registry) -> None:
    from genframe.data.mnist import MNIST, FashionMNIST
    from genframe.loggers.console import ConsoleLogger
    from genframe.loggers.jsonl import JsonlLogger
    from genframe.loggers.wandb_logger import WandbLogger
    from genframe.policies.ema import EMA
    from genframe.policies.evaluation import Evaluation
    from genframe.policies.guard import DivergenceGuard
    from genframe.policies.keep_best import KeepBest

    registry.add("dataset", MNIST.name, MNIST)
    registry.add("dataset", FashionMNIST.name, FashionMNIST)
    registry.add("logger", "console", ConsoleLogger)
    registry.add("logger", "jsonl", JsonlLogger)
    registry.add("logger", "wandb", WandbLogger)
    for callback in (DivergenceGuard, Evaluation, KeepBest, EMA):
        registry.add("callback", callback.name, callback)
