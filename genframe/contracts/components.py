"""The contracts every model family implements: Dataset, Model, Sampler, Trainer, Recipe and Logger.

The core's run loop, checkpointing, sampling commands and loggers only talk to these, so a new family
(energy-based, latent-variable, ...) plugs in by implementing them and registering a Recipe.
Importing this module imports no torch (``Model``, a ``torch.nn.Module``, is made on first use), so a
plugin's recipe and config can be read by ``genframe plugins`` and ``genframe config show`` at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from genframe.config.sections import RecipeConfig
    from genframe.plugins.registry import Registry


#: ``fn(model, sampler, images, generator) -> scores``: see :meth:`Recipe.score_functions`.
ScoreFunction = Callable[["torch.nn.Module", "Sampler", "torch.Tensor", "torch.Generator | None"], "torch.Tensor"]


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


@dataclass
class SampleOutput:
    """What a sampler returns: final samples and, when asked, intermediate states (for GIFs)."""

    images: torch.Tensor
    chain: list[torch.Tensor] = field(default_factory=list)
    #: function evaluations (net calls) per sample, from a sampler that counts them (an ODE solver); else None.
    #: ``genframe sample`` and ``genframe eval`` report it (the mean over chunks, weighed by their samples).
    nfe: float | None = None


@dataclass(frozen=True)
class ExampleBytes:
    """Bytes one example holds in flight (:meth:`Recipe.bytes_per_example`)."""

    training: int  # in a training step: forward, backward and whatever the step draws for it
    sampling: int  # while one sample is drawn (previews, evaluations, ``genframe sample``)


class Sampler(ABC):
    """Draws samples from a model. Kept apart from the model, so samplers are swappable."""

    #: Steps used by :meth:`generate` when none are given (``None``: the sampler has no steps).
    generate_steps: int | None = None
    #: Steps :meth:`refine` takes with nothing held (denoising) when none are given (``None``: ``generate_steps``).
    denoise_steps: int | None = None
    #: True for a sampler whose :meth:`refine` completes hidden entries along its whole path from its own noise
    #: (an ODE from t = 0): ``genframe inpaint`` then draws no pool of samples to start them from (``--match``).
    completes_from_noise: bool = False

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

    def refine(
        self,
        model: torch.nn.Module,
        images: torch.Tensor,
        known: torch.Tensor | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Move ``images`` towards what the model makes, the entries where ``known`` (a boolean tensor that
        broadcasts to ``images``) is True held at their values: completion (``genframe inpaint``, hidden
        entries start from :meth:`init_state` or a matched sample); with ``known`` None every entry moves
        (``genframe denoise``). ``steps`` defaults to ``generate_steps`` (``denoise_steps`` with ``known`` None). Optional: a sampler that cannot leaves this
        (see :func:`refines`), and those commands refuse its recipe in one line."""
        raise NotImplementedError(f"{type(self).__name__} does not refine images")


class Trainer(ABC):
    """Owns the optimisation of one model: the core's loop calls it once per batch."""

    model: torch.nn.Module

    #: Metrics of ``train_step`` that callbacks see before the update (``on_before_update``), averaged over
    #: processes: divergence signals such as a loss gap the trainer watches (e.g. ``("cdiv",)``).
    update_signals: ClassVar[tuple[str, ...]] = ()

    #: True for a class-conditional model: ``train_step`` then gets ``(examples, labels)``, the labels the
    #: dataset holds (``Dataset.labels``) for the very examples of the batch, a long tensor on their device.
    #: A run on a dataset without labels is refused before any work. Default False: ``train_step(examples)``.
    takes_labels: ClassVar[bool] = False

    @abstractmethod
    def train_step(self, batch: torch.Tensor) -> dict[str, torch.Tensor | float]:
        """Forward and backward on ``batch``, up to the optimizer step, which is the core's to call
        (:meth:`apply_update`) once callbacks have seen ``update_signals`` under torchrun too; returns scalar
        metrics (tensors are fine: no host sync). Raise ``DivergenceError`` for a step the trainer finds
        unhealthy (non-finite loss or gradients): the core then calls :meth:`discard_update`."""

    def step(self, batch: torch.Tensor) -> dict[str, torch.Tensor | float]:
        """One whole step outside a run (a benchmark, a notebook): :meth:`train_step`, then
        :meth:`apply_update`, with no callbacks to see it. Returns the step's metrics."""
        from genframe.util.optimizers import optimizer_steps

        with optimizer_steps(self) as stepped:
            metrics = self.train_step(batch)
        if not stepped():  # a trainer of genframe 0.1 stepped inside train_step: never twice
            self.apply_update()
        return metrics

    def apply_update(self) -> None:
        """Step the optimizer with the gradients ``train_step`` left (and anything that goes with a step,
        e.g. a learning-rate schedule). Default: ``self.optimizer.step()``."""
        self._optimizer("apply_update").step()

    def discard_update(self) -> None:
        """Drop the gradients of a step that diverged or was vetoed. Default: ``self.optimizer.zero_grad()``."""
        self._optimizer("discard_update").zero_grad(set_to_none=True)

    def _optimizer(self, method: str) -> Any:
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None:
            raise NotImplementedError(f"{type(self).__name__} has no optimizer attribute; override {method}")
        return optimizer

    @abstractmethod
    def validate(self, dataset: Dataset) -> dict[str, float]:
        """Metrics on held-out data, without changing any state that training depends on."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: model, optimiser, buffers, RNG streams."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    #: Set by the core's loop for trainers of genframe 0.1 that call :meth:`check_update`. None outside a run.
    update_check: Callable[[dict[str, torch.Tensor]], None] | None = None

    def reseed(self, seed: int) -> None:
        """Give the random streams training draws from (its own ``torch.Generator`` s) the seed ``seed``.
        The core calls it on each torchrun process beyond the first, so each draws its own, and after a
        divergence rollback, so the redone steps do not replay the draws that went wrong. Default: nothing."""
        return None

    def check_update(self, signals: dict[str, torch.Tensor]) -> None:
        """Deprecated (0.2, goes in 0.4): a trainer of genframe 0.1 stepped its optimizer in ``train_step`` and
        called this first; name the signals in ``update_signals`` and leave the step to :meth:`apply_update`."""
        from genframe.util.deprecation import deprecate

        if not getattr(self, "_warned_check_update", False):
            self._warned_check_update = True
            deprecate("Trainer.check_update", since="0.2", until="0.4", instead="name the signals in "
                      "update_signals; the core shows them to the callbacks before it calls apply_update()")
        if self.update_check is not None:
            self.update_check(signals)

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

    def work_per_step(self, batch_size: int) -> tuple[str, float] | None:
        """The unit and amount of work in one step, for throughput displays (e.g. ``("img-steps", 7680)``)."""
        return None

    def reshard_state(self, states: list[dict[str, Any]], rank: int, world_size: int) -> dict[str, Any]:
        """This process's state when a run saved by ``len(states)`` processes resumes on ``world_size``
        (torchrun): ``states`` are each saved process's :meth:`state_dict`. A trainer with per-process pools
        (replay buffers, chains) splits them here so that every process holds its own; its random streams
        are reseeded by the core where ``rank`` is beyond the saved processes. Default: process ``rank``
        takes saved process ``rank % len(states)``'s state."""
        return states[rank % len(states)]

    def set_run_length(self, total_steps: int) -> None:
        """The run's length in steps, once known: before the first step (and at each resume), or after the first
        steps of a ``trainer.budget_minutes`` run, which is when its length is fixed. A trainer with schedules
        written as a share of the run (``lr_decay_steps = "100%"``) resolves them here (``RateSchedule``
        does). Default: nothing."""
        return None

    def preview_images(self, n: int) -> dict[str, torch.Tensor]:
        """Pictures of training state worth showing (e.g. replay-buffer samples); default none."""
        return {}


class Recipe(ABC):
    """What ``genframe run NAME`` names: a config model and builders for the components."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    config_class: ClassVar[type[RecipeConfig]]

    @abstractmethod
    def build_model(self, config: RecipeConfig) -> torch.nn.Module: ...

    @abstractmethod
    def build_sampler(self, config: RecipeConfig) -> Sampler: ...

    @abstractmethod
    def build_trainer(
        self, config: RecipeConfig, model: torch.nn.Module, sampler: Sampler, device: torch.device
    ) -> Trainer: ...

    def draw_samples(self, samples: torch.Tensor, path: Path) -> Path:
        """Write a picture of ``samples`` to ``path`` (a PNG) and return where it went; previews during
        training and ``genframe sample --out`` use it. Default: an image grid of (N, C, H, W) samples in
        [-1, 1]; a recipe whose samples are anything else (points, sequences, ...) overrides this."""
        from genframe.util.images import save_grid  # PIL and numpy only when a picture is drawn

        _require_images(self.name, samples, "draw_samples")
        return save_grid(samples, path)

    def draw_chain(self, chain: list[torch.Tensor], path: Path) -> Path:
        """Write an animation of sampling states (each shaped like ``samples``) to ``path`` (a GIF) and
        return where it went; the final chain GIF and ``genframe sample --gif`` use it. Default: a GIF
        of image grids, one frame per state."""
        from genframe.util.images import save_gif

        for state in chain:
            _require_images(self.name, state, "draw_chain")
        return save_gif(chain, path)

    def fit_to_data(self, config: RecipeConfig, example_shape: tuple[int, ...]) -> RecipeConfig:
        """``config`` with the settings that follow the data filled in from the dataset's example shape where
        the user left them unset (``model_fields_set``), e.g. a model's input channels and image size. Runs
        before the config is checked against the data; the run saves the result, so a run's config.json
        holds the values it trained with. Default: unchanged."""
        return config

    def model_inputs(self, config: RecipeConfig, examples: torch.Tensor) -> tuple[Any, ...]:
        """The positional arguments the recipe's model is called with on a batch of ``examples`` (N, ...): what
        the core's pre-run check passes to ``model(*inputs)``. Default ``(examples,)``, for a net that takes
        the examples alone (an energy, a classifier). A net that takes more returns it, made on ``examples``'
        device and batch size, e.g. a time or noise level, ``(examples, torch.zeros(len(examples),
        device=examples.device))`` (flow matching, diffusion, score models), or a class label,
        ``(examples, torch.zeros(len(examples), dtype=torch.long, device=examples.device))`` (a conditional
        model). Zeros suffice: the check asks whether shapes and arguments fit, not what the net computes."""
        return (examples,)

    def check_data(self, config: RecipeConfig, example_shape: tuple[int, ...], dataset: str) -> None:
        """Raise ``ConfigError`` naming the settings when the config does not fit the dataset's examples
        (e.g. the channels or size the model and sampler are built for). Checked before any work starts,
        followed by the core's own check: a forward pass of two examples (called as :meth:`model_inputs` says)
        on the ``meta`` device. Default: only that."""

    def memory_needs(self, config: RecipeConfig, example_shape: tuple[int, ...]) -> dict[str, int]:
        """Bytes the run would hold of the recipe's own, by part, each named with the setting that sizes it
        (e.g. ``{"replay buffer (buffer.size=8192)": n}``): buffers and caches. Batches and samples in
        flight are the core's to count from :meth:`bytes_per_example`. Default: nothing."""
        return {}

    def bytes_per_example(self, config: RecipeConfig, example_shape: tuple[int, ...]) -> ExampleBytes | None:
        """What one example costs in flight: in a training step, and while one sample is drawn. The core
        multiplies them by its own batches (``trainer.batch_size``, ``logging.sample_n`` and ``chain_n``, an
        evaluation's chunk) before any work starts. Default None: those batches go uncounted."""
        return None

    def metric_goals(self) -> dict[str, str]:
        """Which way is better for this recipe's own metrics, ``{"name": "min" | "max"}`` (e.g. a loss it logs);
        sweep summaries report the best value of these. The core's evaluation metrics are declared already."""
        return {}

    def score_functions(self, config: RecipeConfig) -> dict[str, ScoreFunction]:
        """Named ways to score inputs by how typical of the training data the model finds them, higher =
        more typical, the first the default: ``genframe score`` and ``genframe ood`` use them. Each is called
        as ``fn(model, sampler, images, generator)`` with the model the run samples with and returns one
        float per image. Default none: those commands refuse the recipe in one line."""
        return {}

    def quality_metric(self, config: RecipeConfig, registry: Registry) -> Callable[[torch.Tensor], dict[str, float]] | None:
        """This recipe's own measure of sample quality: a callable taking (N, ...) samples and returning
        named numbers, used by ``genframe eval`` and the evaluations during training (``config``: the
        run's, or the recipe's defaults with the run's data section). It may also have an ``anchors(n)``
        method giving reference rows (e.g. real data) for the report. Built once per process and config.
        Default None: the core's classifier metric, which measures labelled image datasets."""
        return None


def refines(sampler: Sampler) -> bool:
    """Whether ``sampler`` implements :meth:`Sampler.refine` (completion and denoising)."""
    return type(sampler).refine is not Sampler.refine


def _require_images(recipe: str, samples: torch.Tensor, method: str) -> None:
    # A one-line error rather than a shape traceback from deep inside the picture code.
    if samples.dim() != 4 or samples.shape[1] not in (1, 3):
        from genframe.contracts.errors import PluginError

        raise PluginError(f"recipe {recipe!r} makes samples of shape {tuple(samples.shape[1:])}, not images "
                          f"(C, H, W) with 1 or 3 channels: it must override Recipe.{method} to draw them")


def __getattr__(name: str) -> Any:
    if name == "Logger":  # lived here in 0.1 (``genframe.interfaces.Logger``); a listener now
        from genframe.contracts.listeners import Logger

        return Logger
    if name == "Model":  # a torch.nn.Module subclass: defined when first asked for, not on import
        import torch

        class Model(torch.nn.Module):
            """Base class for a recipe's network. Any ``torch.nn.Module`` satisfies the contract."""

        Model.__module__, Model.__qualname__ = __name__, "Model"
        globals()["Model"] = Model
        return Model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
