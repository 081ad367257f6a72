"""The contracts every model family implements: Dataset, Model, Sampler, Trainer, Recipe and Logger.

The core's run loop, checkpointing, sampling commands and loggers only talk to these, so a new family
(energy-based, latent-variable, ...) plugs in by implementing them and registering a Recipe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:  # pragma: no cover
    from genframe.config import RecipeConfig


class Dataset(ABC):
    """A finite dataset held in memory; batches are gathered by index.

    Indexed batches (rather than a per-item ``__getitem__`` through a DataLoader) let the core
    shuffle deterministically from a seed, resume mid-epoch exactly, and shard across processes.
    """

    name: ClassVar[str] = ""
    labels: torch.Tensor | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """Model-ready float examples at ``indices`` (a 1-D long tensor)."""

    @property
    @abstractmethod
    def example_shape(self) -> tuple[int, ...]:
        """Shape of one example as ``get_batch`` returns it, e.g. ``(1, 32, 32)``."""

    def to(self, device: torch.device | str) -> Dataset:
        """Move the stored data to ``device`` (whole datasets are small); default: no-op."""
        return self


class Model(torch.nn.Module):
    """Base class for a recipe's network. Any ``torch.nn.Module`` satisfies the contract."""


@dataclass
class SampleOutput:
    """What a sampler returns: final samples and, when asked, intermediate states (for GIFs)."""

    images: torch.Tensor
    chain: list[torch.Tensor] = field(default_factory=list)


class Sampler(ABC):
    """Draws samples from a model. Kept apart from the model, so samplers are swappable."""

    #: Steps used by :meth:`generate` when none are given (``None``: the sampler has no steps).
    generate_steps: int | None = None

    @abstractmethod
    def init_state(
        self, n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Starting points for ``n`` samples (e.g. uniform noise for Langevin chains, codes drawn from a prior)."""

    @abstractmethod
    def sample(
        self,
        model: torch.nn.Module,
        init: torch.Tensor,
        steps: int | None = None,
        keep_every: int | None = None,
        generator: torch.Generator | None = None,
    ) -> SampleOutput:
        """Run the sampler from ``init``; keep every ``keep_every``-th state in ``chain``."""

    def generate(
        self,
        model: torch.nn.Module,
        n: int,
        steps: int | None = None,
        keep_every: int | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> SampleOutput:
        """Generate ``n`` fresh samples with the recipe's generation settings."""
        init = self.init_state(n, device=device, generator=generator)
        steps = self.generate_steps if steps is None else steps
        return self.sample(model, init, steps=steps, keep_every=keep_every, generator=generator)


class Trainer(ABC):
    """Owns the optimisation of one model: the core's loop calls it once per batch."""

    model: torch.nn.Module

    @abstractmethod
    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor | float]:
        """One optimiser step on ``batch``; returns scalar metrics (tensors are fine: no host sync)."""

    @abstractmethod
    def validate(self, dataset: Dataset) -> dict[str, float]:
        """Metrics on held-out data, without changing any state that training depends on."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: model, optimiser, buffers, RNG streams."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def distribute(self, rank: int, world_size: int) -> None:
        """Called on each process of a torchrun job before training from scratch (and for processes
        beyond a checkpoint's count on resume): give this rank its own random streams. Default: nothing."""
        return None

    def reseed(self, seed: int) -> None:
        """Called after a divergence rollback has restored the checkpoint: reseed the random streams
        training draws from (noise, replay draws) with ``seed``, so the redone steps do not replay the
        very draws that led to the divergence. Default: nothing."""
        return None

    def scale_learning_rate(self, factor: float) -> list[float]:
        """Multiply the learning rate by ``factor`` (after a divergence); returns the new rates.

        The default handles a trainer whose ``optimizer`` attribute is a ``torch.optim.Optimizer``.
        """
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            raise NotImplementedError(f"{type(self).__name__} has no optimizer attribute; override scale_learning_rate")
        for group in optimizer.param_groups:
            group["lr"] *= factor
        return [group["lr"] for group in optimizer.param_groups]

    def is_settled(self) -> bool:
        """False while the trainer suspects a divergence it has not confirmed yet (e.g. a loss that has
        looked wrong for a few steps): the loop then puts off its routine checkpoint, so that a rollback
        never lands on a state that was already going bad. Default: always settled."""
        return True

    def work_per_step(self, batch_size: int) -> tuple[str, float] | None:
        """The unit and amount of work in one step, for throughput displays (e.g. ``("img-steps", 7680)``)."""
        return None

    def preview_images(self, n: int) -> dict[str, torch.Tensor]:
        """Pictures of training state worth showing (e.g. replay-buffer samples); default none."""
        return {}

    def sampling_model(self) -> torch.nn.Module | None:
        """The network to sample and evaluate with when it is not the one being trained (e.g. an
        exponential moving average of its weights); the checkpoint keeps its weights for ``genframe
        sample`` and ``eval``. Default None: the trained model itself."""
        return None


class Recipe(ABC):
    """What ``genframe run NAME`` names: a config model and builders for the components."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    config_class: ClassVar[type[RecipeConfig]]

    @abstractmethod
    def build_model(self, config: RecipeConfig) -> torch.nn.Module: ...

    def build_sampling_model(self, config: RecipeConfig) -> torch.nn.Module:
        """The network that a checkpoint's ``sampling_model`` weights (``Trainer.sampling_model``) load
        into, for ``genframe sample`` and ``eval``. Default: one like the trained model (e.g. averaged weights)."""
        return self.build_model(config)

    @abstractmethod
    def build_sampler(self, config: RecipeConfig) -> Sampler: ...

    @abstractmethod
    def build_trainer(
        self, config: RecipeConfig, model: torch.nn.Module, sampler: Sampler, device: torch.device
    ) -> Trainer: ...


class Logger:
    """Base for loggers: a logger is a plugin object whose methods are ``@hookimpl`` lifecycle hooks.

    The run creates the loggers named in ``logging.loggers`` as ``LoggerClass(run)`` and registers
    them with the plugin manager for the run's duration, so they receive ``genframe_run_start``,
    ``genframe_log``, ``genframe_checkpoint`` and ``genframe_run_end`` like any other plugin.
    """

    def __init__(self, run: Any) -> None:
        self.run = run
