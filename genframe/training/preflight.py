"""Checks a run passes before any work starts: the recipe's model against the dataset's examples, and
the memory the run would need against the memory there is. Each failure is one ``ConfigError`` line
naming the settings, instead of a shape or allocator traceback minutes later.

The model is built on PyTorch's ``meta`` device for these checks: shapes and sizes without memory
or arithmetic, and without touching the random streams a run is seeded with. Models should build and
run there (plain layers do). One that cannot, because its constructor or forward reads values
(``.item()``, ``if x.max() > 1:``, ``.numpy()``, ``nonzero``), is checked by a forward pass of two
real zero examples on the CPU instead, built inside ``fork_rng`` so the run's random streams are
untouched; and if it cannot even be built there, the check is skipped and the run reports its own
error. Only a failed forward pass is reported: a shape or dtype the model does not take.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from genframe.config.batches import EVAL_CHUNK, gif_frames
from genframe.config.callbacks import callback_settings
from genframe.contracts.components import ExampleBytes, Recipe
from genframe.contracts.errors import ConfigError, GenframeError, PluginError
from genframe.util.resources import available_memory
from genframe.util.text import one_line

GIB = 2**30
FLOAT_BYTES = 4  # a GIF frame is a float32 copy of an example
# weights, gradients and two Adam moments: what training holds per parameter, besides activations
COPIES_PER_PARAMETER = 4


def meta_model(recipe: Recipe, config: Any) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        return recipe.build_model(config)


def meta_limitation(exc: Exception) -> bool:
    """Whether ``exc`` says only that the ``meta`` device cannot do this (a value was read, an op has no
    meta kernel), not that the model and the examples do not fit."""
    if isinstance(exc, NotImplementedError) or "meta" in str(exc).lower():
        return True
    # torch's fake-tensor errors for data-dependent shapes and branches, matched by name (private modules)
    return any("DataDependent" in cls.__name__ or "DynamicOutputShape" in cls.__name__ for cls in type(exc).__mro__)


def forward_two(recipe: Recipe, config: Any, model: torch.nn.Module, shape: tuple[int, ...], device: str) -> None:
    """A forward pass of two zero examples of ``shape`` on ``device``, called with the arguments
    ``Recipe.model_inputs`` gives (no gradients, no random draws kept)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # e.g. dropout draws nothing from the run's stream
        examples = torch.zeros((2, *shape), device=device)
        try:
            inputs = inputs_for(recipe, config, examples)
        except Exception as exc:  # the hook itself failed: the model was never called
            raise PluginError(f"recipe {recipe.name!r}: Recipe.model_inputs(config, examples) failed on examples of "
                              f"shape {tuple(examples.shape)}: {type(exc).__name__}: {one_line(exc)[:200]}; fix the "
                              "recipe's model_inputs (docs/writing-plugins.md, 'How the model is called')") from None
        model(*inputs)


def inputs_for(recipe: Recipe, config: Any, examples: torch.Tensor) -> tuple[Any, ...]:
    """``recipe.model_inputs(config, examples)``; ``(examples,)`` for a duck-typed recipe without it."""
    model_inputs = getattr(recipe, "model_inputs", None)
    return (examples,) if model_inputs is None else tuple(model_inputs(config, examples))


def described_call(recipe: Recipe, config: Any, shape: tuple[int, ...]) -> str:
    """``model(x)`` as the check called it, each argument by shape and dtype: ``model(float32 (2, 2), int64 (2,))``."""
    try:
        with torch.device("meta"):
            inputs = inputs_for(recipe, config, torch.zeros((2, *shape)))
    except Exception:
        return f"model(float32 {(2, *shape)})"
    shown = [f"{str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}" if isinstance(value, torch.Tensor)
             else repr(value)[:40] for value in inputs]
    return f"model({', '.join(shown)})"


def calling_problem(exc: Exception) -> bool:
    """Whether ``exc`` says the model was called with the wrong arguments (not that an argument's shape was wrong)."""
    text = str(exc)
    return isinstance(exc, TypeError) and any(word in text for word in (
        "positional argument", "keyword argument", "required argument", "takes from", "were given", "was given"))


def mismatch(recipe: Recipe, config: Any, shape: tuple[int, ...], dataset: str, exc: Exception) -> ConfigError:
    """The one-line error for a forward pass that failed: what was called, what went wrong, and where to look:
    ``Recipe.model_inputs`` when the arguments do not match the net's, the model settings when a shape does not."""
    reason = f"{type(exc).__name__}: {one_line(exc)[:200]}"
    called = described_call(recipe, config, shape)
    own_inputs = getattr(type(recipe), "model_inputs", Recipe.model_inputs) is not Recipe.model_inputs
    if calling_problem(exc):
        fix = ("fix the recipe's model_inputs to give the arguments the model's forward takes" if own_inputs else
               "a model that takes more than the examples (a time, a noise level, a class label) needs its recipe "
               "to override Recipe.model_inputs to give them (docs/writing-plugins.md, 'How the model is called')")
        return ConfigError(f"model: the pre-run check called the {recipe.name} model as {called} on dataset "
                           f"{dataset}'s examples of shape {shape} and it refused the arguments ({reason}); {fix}")
    return ConfigError(f"model: the {recipe.name} model does not take dataset {dataset}'s examples of shape "
                       f"{shape} ({reason}; called as {called}); change the model settings to match "
                       f"(`genframe config show {recipe.name}` lists them)")


def check_model_fits_data(recipe: Recipe, config: Any, example_shape: tuple[int, ...], dataset: str) -> None:
    """The recipe's own check (``Recipe.check_data``), then a forward pass of two examples (with the arguments
    ``Recipe.model_inputs`` gives) on ``meta``, or on the CPU for a model that reads values (see the module's docstring)."""
    shape = tuple(example_shape)
    recipe.check_data(config, shape, dataset)
    model = None
    try:
        model = meta_model(recipe, config)
        forward_two(recipe, config, model, shape, "meta")
        return
    except GenframeError:
        raise  # the recipe's builder named a bad setting itself
    except Exception as exc:  # a shape error, whatever layer raises it, or something meta cannot do
        if model is not None and not meta_limitation(exc):
            raise mismatch(recipe, config, shape, dataset, exc) from None
    if model is not None and not fits_on_cpu(model):
        return  # a real copy would not fit: check_memory says so, in its own line
    try:
        with torch.random.fork_rng(devices=[]), torch.device("cpu"):
            model = recipe.build_model(config)
    except GenframeError:
        raise
    except Exception:  # not a shape question (a missing file, a value it reads...): the run reports it itself
        return
    try:
        forward_two(recipe, config, model, shape, "cpu")
    except NotImplementedError:
        return  # an op the CPU lacks: nothing this check can tell
    except Exception as exc:
        raise mismatch(recipe, config, shape, dataset, exc) from None


def fits_on_cpu(model: torch.nn.Module) -> bool:
    """Whether a real copy of ``model`` (built on ``meta``) fits in the memory available."""
    available = available_memory(torch.device("cpu"))
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return available is None or size <= available // 2


def memory_needs(recipe: Recipe, config: Any, example_shape: tuple[int, ...]) -> dict[str, int]:
    """What the run would hold, by part: the model with its optimizer state, the recipe's own parts
    (``Recipe.memory_needs``: buffers, caches), and the batches in flight, the core's batch sizes times what
    one example costs (``Recipe.bytes_per_example``). Summed although they come one at a time: an upper
    bound that stays small unless one setting is huge, and a huge one is what this is here to catch."""
    needs = {}
    try:
        parameters = sum(p.numel() for p in meta_model(recipe, config).parameters())
        needs["model weights, gradients and optimizer state (model.*)"] = parameters * 4 * COPIES_PER_PARAMETER
    except GenframeError:
        raise
    except Exception:  # a model that does not build on meta goes uncounted rather than built for real here
        pass
    needs.update(recipe.memory_needs(config, tuple(example_shape)))
    bytes_per_example = getattr(recipe, "bytes_per_example", None)  # absent on a duck-typed recipe
    per = bytes_per_example(config, tuple(example_shape)) if bytes_per_example else None
    if per is not None:
        needs.update(batches_in_flight(recipe, config, tuple(example_shape), per))
    return needs


def batches_in_flight(recipe: Recipe, config: Any, example_shape: tuple[int, ...], per: ExampleBytes) -> dict[str, int]:
    """The core's batches: training's, the previews', the final GIF's (with its frames) and an evaluation's."""
    batch, logging = config.trainer.batch_size, config.logging
    needs = {f"training batch (trainer.batch_size={batch})": batch * per.training,
             f"preview samples (logging.sample_n={logging.sample_n})": logging.sample_n * per.sampling}
    if logging.chain_n:  # each chain also keeps its GIF frames
        steps = logging.sample_steps or getattr(recipe.build_sampler(config), "generate_steps", 0) or 1
        frame = FLOAT_BYTES * math.prod(example_shape)
        needs[f"final GIF chains (logging.chain_n={logging.chain_n})"] = logging.chain_n * (
            per.sampling + gif_frames(steps) * frame)
    evaluation = callback_settings(config, "evaluation")
    if evaluation and any(evaluation.get(key) for key in ("every_epochs", "every_minutes", "every_steps")):
        n = evaluation.get("n", 1000)  # drawn EVAL_CHUNK at a time: one chunk is in flight
        needs[f"evaluation chains (callbacks.evaluation.n={n}, {EVAL_CHUNK} at a time)"] = min(n, EVAL_CHUNK) * per.sampling
    return needs


def check_batch(config: Any, n_examples: int, world_size: int = 1) -> None:
    """One training batch must come out of the data (each of ``world_size`` processes takes its share)."""
    batch = config.trainer.batch_size
    if n_examples // world_size // batch == 0:
        shared = f", shared by {world_size} processes" if world_size > 1 else ""
        raise ConfigError(f"trainer.batch_size: {batch} is larger than the training data "
                          f"({n_examples} examples{shared})")


def check_memory(recipe: Recipe, config: Any, example_shape: tuple[int, ...], device: torch.device) -> None:
    """The parts of :func:`memory_needs` together against the memory ``device`` has free; one line naming
    the parts, largest first, when they do not fit."""
    needs = memory_needs(recipe, config, example_shape)
    available = available_memory(device)
    total = sum(needs.values())
    if available is None or total <= available:
        return
    parts = ", ".join(f"{name}: {size / GIB:,.1f} GiB" for name, size in sorted(needs.items(), key=lambda kv: -kv[1]))
    where = "free on the GPU" if device.type == "cuda" else "available"
    raise ConfigError(f"the run would need about {total / GIB:,.1f} GiB of memory ({parts}) but {available / GIB:,.1f} "
                      f"GiB is {where}; lower the setting of the largest part")
