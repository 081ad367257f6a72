"""Evaluate a trained model's samples: ``genframe eval`` and ``genframe.evaluate``, and the
evaluations run during training (the ``evaluation`` callback).

The metric is the recipe's own when it offers one (``Recipe.quality_metric``); otherwise, for a
labelled dataset of images, the samples and the dataset's test split go through the same cached
classifier (see ``genframe.using.classifier``). Anything else is refused with one line, never a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genframe.config.batches import EVAL_CHUNK
from genframe.config.sections import DataConfig, RecipeConfig, config_to_dict
from genframe.contracts.components import Recipe
from genframe.contracts.context import RunContext
from genframe.contracts.errors import GenframeError, NoQualityMetric, PluginError
from genframe.loggers.attach import is_console, open_loggers
from genframe.plugins.host import get_host
from genframe.plugins.recipes import get_recipe
from genframe.plugins.registry import CORE_PLUGIN, Registry, following_runs
from genframe.training.checkpoint import run_dir_of
from genframe.training.listeners import Listeners
from genframe.training.runsetup import build_dataset
from genframe.using.classifier import MIN_SIDE, ClassifierSpec, cache_dir, load_or_train, measures
from genframe.using.generation import generate_in_chunks
from genframe.using.load import load
from genframe.using.metrics import Reference, features_and_probs, quality
from genframe.using.outputs import check_output_paths
from genframe.util.atomic import atomic_write_text

EVAL_NAME = "eval.json"
GRID_N = 64  # samples in the grid an evaluation draws


class Evaluator:
    """The classifier and reference statistics of one dataset, reused across evaluations."""

    def __init__(self, registry: Registry, data: DataConfig, spec: ClassifierSpec = ClassifierSpec(),
                 recipe: str | None = None) -> None:
        """``recipe``: the recipe whose samples it would measure, refused when they are not images (one line)."""
        full = data.model_copy(update={"limit": None})  # always the whole test set: comparable numbers
        test = build_dataset(registry, full, "test")
        if recipe is not None:
            refuse_non_images(recipe, data.name, tuple(test.example_shape))
        self.train = build_dataset(registry, full, "train")
        if self.train.labels is None or not measures(tuple(test.example_shape)):
            raise NoQualityMetric(f"dataset {data.name!r} has no quality classifier (genframe eval measures labelled "
                            f"image datasets of shape (C, H, W), at least {MIN_SIDE} pixels a side, such as mnist and "
                            f"fashion_mnist, and this one's examples are "
                            f"{'unlabelled ' if self.train.labels is None else ''}of shape "
                            f"{tuple(test.example_shape)}); a recipe can offer its own metric by overriding "
                            f"Recipe.quality_metric")
        num_classes = getattr(self.train, "num_classes", None) or int(self.train.labels.max()) + 1
        # a dataset read from the user's files names its classifier by their content, not by "imagefolder"
        fingerprint = getattr(self.train, "fingerprint", None)
        entry = registry.entry("dataset", data.name)  # by whose dataset it is: two plugins may offer one name
        name = entry.name if entry.plugin == CORE_PLUGIN else f"{entry.plugin}-{entry.name}"
        name = name if fingerprint is None else f"{name}-{fingerprint[:16]}"
        self.classifier = load_or_train(name, self.train, num_classes, spec)
        self.example_shape = test.example_shape
        self.reference = Reference(features_and_probs(self.classifier, test.get_batch(torch.arange(len(test))))[0])
        self._anchors: dict[int, dict[str, dict[str, float]]] = {}

    def __call__(self, images: torch.Tensor) -> dict[str, float]:
        if tuple(images.shape[1:]) != tuple(self.example_shape):
            raise PluginError(f"the sampler made samples of shape {tuple(images.shape[1:])}, but the quality "
                              f"classifier compares {tuple(self.example_shape)} dataset images; make the sampler "
                              f"give the dataset's shape, or offer a metric by overriding Recipe.quality_metric")
        return quality(self.classifier, images, self.reference)

    def anchors(self, n: int) -> dict[str, dict[str, float]]:
        """The scale for ``n`` samples: real training images (the floor) and uniform noise, vs test."""
        if n not in self._anchors:
            generator = torch.Generator().manual_seed(0)
            index = torch.randperm(len(self.train), generator=generator)[:n]
            noise = torch.rand((n, *self.example_shape), generator=generator) * 2 - 1
            self._anchors[n] = {"train": self(self.train.get_batch(index)), "noise": self(noise)}
        return self._anchors[n]


class RecipeMetric:
    """A recipe's own metric behind the Evaluator's interface: ``metric(samples)`` gives plain floats,
    ``anchors(n)`` the metric's reference rows, or None when it has none."""

    def __init__(self, metric: Callable[[torch.Tensor], dict[str, float]]) -> None:
        self.metric = metric

    def __call__(self, samples: torch.Tensor) -> dict[str, float]:
        return {name: float(value) for name, value in self.metric(samples).items()}

    def anchors(self, n: int) -> dict[str, dict[str, float]] | None:
        anchors = getattr(self.metric, "anchors", None)
        return None if anchors is None else anchors(n)


_SHARED: dict[tuple[str, ...], Evaluator | RecipeMetric] = {}
_RECIPE_METRICS: dict[tuple[str, ...], RecipeMetric] = {}


def _recipe_metric(registry: Registry, data: DataConfig, recipe: Recipe,
                   config: RecipeConfig | None) -> RecipeMetric | None:
    """``recipe``'s own metric for ``config`` (by default the recipe's defaults with this data section), built
    once per process and config; None when it has none (asked again next time: answering None costs nothing)."""
    config = config or recipe.config_class(data=data.model_dump())  # a dict: the recipe's own data class
    key = ("recipe", recipe.name, json.dumps(config_to_dict(config), sort_keys=True))
    if key not in _RECIPE_METRICS:
        metric = recipe.quality_metric(config, registry)
        if metric is None:
            return None
        _RECIPE_METRICS[key] = RecipeMetric(metric)
    return _RECIPE_METRICS[key]


def shared_evaluator(registry: Registry, data: DataConfig, recipe: Recipe | None = None,
                     config: RecipeConfig | None = None) -> Evaluator | RecipeMetric:
    """The quality metric of ``recipe``'s runs on ``data``: the recipe's own (``Recipe.quality_metric``,
    given ``config``, by default the recipe's defaults with this data section), else the classifier
    metric, which refuses a recipe whose samples are not images in one line. One per dataset (and recipe and
    config) in this process: evaluating many checkpoints is cheap."""
    if recipe is not None:
        metric = _recipe_metric(registry, data, recipe, config)
        if metric is not None:
            return metric
    key = ("classifier", data.model_copy(update={"limit": None}).model_dump_json(), str(cache_dir()))
    if key not in _SHARED:
        _SHARED[key] = Evaluator(registry, data, recipe=None if recipe is None else recipe.name)
    return _SHARED[key]


def refuse_non_images(recipe: str, dataset: str, shape: tuple[int, ...], instead: str = "") -> None:
    """One line, before any sample is drawn, when the core's classifier would be asked to measure samples of
    ``shape`` (``dataset``'s examples) that are shaped like images (C, H, W) but too small to be any: a recipe
    whose samples are points or vectors needs a metric of its own. (Examples of another rank, such as (2,), have
    no classifier at all: an evaluation says so and measures nothing.)"""
    if len(shape) == 3 and not measures(shape):
        raise PluginError(f"recipe {recipe!r} makes samples of shape {shape}, like the examples of dataset "
                          f"{dataset!r}, which the core's quality metric cannot measure: its classifier measures "
                          f"images (C, H, W) at least {MIN_SIDE} pixels a side; give the recipe a quality_metric "
                          f"(Recipe.quality_metric) that measures its samples{instead}")


def check_measurable(registry: Registry, data: DataConfig, recipe: Recipe, shape: tuple[int, ...],
                     config: RecipeConfig | None = None, instead: str = "") -> None:
    """Refuse at once (a run's evaluation callback: before its first step) a recipe without a metric of its own
    whose samples, shaped like ``data``'s examples (``shape``), the core's classifier cannot measure; asks the
    recipe for its metric only when that shape would be refused."""
    if len(shape) == 3 and not measures(shape) and _recipe_metric(registry, data, recipe, config) is None:
        refuse_non_images(recipe.name, data.name, shape, instead)


@following_runs
def evaluate(path: str | Path, n: int = 1000, steps: int | None = None, seed: int = 0, device: str = "auto",
             log: bool = True) -> dict[str, Any]:
    """Generate ``n`` samples from a run or checkpoint and measure them; writes ``RUN_DIR/eval.json``.

    The report's ``samples`` holds the metric's numbers; ``anchors`` (when the metric has a scale, like
    the classifier's real images and noise) the same numbers for reference samples."""
    loaded = load(path, device)
    recipe = get_recipe(loaded.recipe_name)
    check_output_paths({"the report": run_dir_of(loaded.checkpoint) / EVAL_NAME})  # before the work, not after
    try:
        evaluator, no_metric = shared_evaluator(get_host().registry, loaded.config.data, recipe, loaded.config), None
    except NoQualityMetric as exc:  # unlabelled data, say: the samples can still be looked at
        evaluator, no_metric = None, str(exc)
    start = time.perf_counter()
    generated = generate_in_chunks(loaded.sampler, loaded.model, n, steps, seed, stream=7, device=loaded.device,
                                   chunk=EVAL_CHUNK)
    samples = generated.images
    seconds = time.perf_counter() - start
    run_dir = run_dir_of(loaded.checkpoint)
    try:
        # spread over all the samples: chunks (or a mixture's members) may differ, and the first 64 show one
        shown = samples[torch.linspace(0, len(samples) - 1, min(GRID_N, len(samples))).long()]
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)  # the core makes every folder it hands a recipe
        grid = recipe.draw_samples(shown, run_dir / "samples" / f"eval_step{loaded.step:07d}.png")
    except GenframeError:  # samples this recipe cannot draw: the numbers stand alone
        grid = None
    report = {
        "recipe": loaded.recipe_name, "checkpoint": str(loaded.checkpoint), "step": loaded.step,
        "dataset": loaded.config.data.name, "n": n, "steps": steps if steps is not None else loaded.sampler.generate_steps,
        "seed": seed, "generation_seconds": round(seconds, 2),
        "seconds_per_1000": round(1000 * seconds / n, 2), "nfe": generated.nfe, "grid": None if grid is None else str(grid),
        "samples": {} if evaluator is None else evaluator(samples),
    }
    if no_metric is not None:
        report["no_metric"] = no_metric
    anchors = None if evaluator is None else evaluator.anchors(n)
    if anchors:
        report["anchors"] = anchors
    atomic_write_text(run_dir / EVAL_NAME, json.dumps(report, indent=2) + "\n")
    if log and not loaded.exported:  # an exported folder is no run: it has no loggers to tell
        metrics = {**{f"eval/{k}": v for k, v in report["samples"].items()}, "eval/n": report["n"]}
        send_to_loggers(run_dir, loaded, metrics)
    return report


def send_to_loggers(run_dir: Path, loaded, metrics: dict[str, float], images: dict[str, Any] | None = None) -> None:
    """Hand a measurement of a trained model to its run's own loggers (not the console: the caller prints it)."""
    host = get_host()
    ctx = RunContext(run_dir, loaded.recipe_name, loaded.config, loaded.device, steps_per_epoch=1,
                     total_steps=loaded.step, step=loaded.step, epoch=loaded.epoch, resumed=True,
                     extra=dict(loaded.extra), purpose="eval")
    loggers = open_loggers(host, [n for n in loaded.config.logging.loggers if not is_console(n)], ctx)
    listeners = Listeners([], ctx, loggers)  # the run's one way to be heard: each logger's failure its own
    for point, args in (("on_run_start", ()), ("on_log", (metrics, images or {})), ("on_run_end", ("completed",))):
        listeners.call(point, ctx, *args)


# The classifier metric's columns keep their short headers; any other metric is shown by its own name.
HEADERS = {"confident": "conf>0.9"}
ANCHOR_ROWS = {"train": "train images (floor)", "noise": "uniform noise"}


def format_report(report: dict[str, Any]) -> str:
    """The table ``genframe eval`` prints: a row for the samples, and one per anchor if the metric has any."""
    rows = [("samples", report["samples"])]
    rows += [(ANCHOR_ROWS.get(name, name), values) for name, values in (report.get("anchors") or {}).items()]
    names = list(report["samples"])
    widths = [max(10, len(HEADERS.get(name, name)) + 2) for name in names]
    label = max(22, *(len(row) + 2 for row, _ in rows))
    steps = "one pass" if report["steps"] is None else f"{report['steps']} sampler steps"
    if "no_metric" in report:
        drawn = f"; the samples: {report['grid']}" if report.get("grid") else ""
        return (f"{report['recipe']} at step {report['step']}: {report['n']} samples, {steps}; no quality metric is "
                f"available, so none was measured: {report['no_metric']}{drawn}")
    nfe = f" ({report['nfe']} function evaluations each)" if report.get("nfe") else ""
    lines = [f"{report['recipe']} at step {report['step']}: {report['n']} samples, {steps}, "
             f"{report['generation_seconds']} s to generate{nfe}; vs the {report['dataset']} test set",
             " " * label + "".join(f"{HEADERS.get(name, name):>{w}}" for name, w in zip(names, widths))]
    for row, values in rows:
        cells = "".join(f"{values[name]:{w}.3f}" if name in values else " " * (w - 1) + "-"
                        for name, w in zip(names, widths))
        lines.append(f"{row:{label}}{cells}")
    return "\n".join(lines)
