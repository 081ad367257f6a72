"""Scoring inputs with a trained model, and telling the training data from other data by the score:
``genframe score``, ``genframe ood``, ``LoadedModel.score``.

A recipe offers scores through :meth:`Recipe.score_functions` (higher = more typical of its training
data); the core knows nothing of how a score is made. Inputs are read chunk by chunk
(:mod:`genframe.inputs`), so memory holds one chunk of images and one float per image.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genframe.atomic import atomic_write, atomic_write_text
from genframe.checkpoint import run_dir_of
from genframe.errors import RunError
from genframe.inputs import ImageSet, parse_inputs
from genframe.interfaces import ScoreFunction
from genframe.recipes import get_recipe
from genframe.reproducible import reproducible_kernels
from genframe.runsetup import drawn_generator

OOD_NAME = "ood.json"
CHUNK = 500
DEFAULT_OUT_SETS = ("noise", "gaussian", "constant", "flipped", "inverted")


def score_function(loaded, name: str | None = None) -> tuple[str, ScoreFunction]:
    """The recipe's score called ``name`` (default: its first), or one line saying what it offers."""
    scores = get_recipe(loaded.recipe_name).score_functions(loaded.config)
    if not scores:
        raise RunError(f"recipe {loaded.recipe_name!r} offers no score (Recipe.score_functions), so its models "
                       f"cannot score inputs; genframe score and genframe ood need a recipe that does, such as ebm")
    if name is None:
        return next(iter(scores.items()))
    if name not in scores:
        raise RunError(f"recipe {loaded.recipe_name!r} has no score {name!r}; its scores: {', '.join(scores)}")
    return name, scores[name]


def score_images(loaded, images: torch.Tensor, kind: str | ScoreFunction | None = None, seed: int = 0,
                 stream: tuple[int, ...] = ()) -> torch.Tensor:
    """One score per image (higher = more typical), on the CPU; ``images`` shaped like the model's examples.
    ``kind``: a score's name (default: the recipe's first) or the function :func:`score_function` gave."""
    function = kind if callable(kind) else score_function(loaded, kind)[1]
    generator = drawn_generator(seed, "score", *stream, device=loaded.device)
    with reproducible_kernels():
        scores = function(loaded.model, loaded.sampler, images.to(loaded.device), generator)
    return scores.detach().float().cpu()


def example_shape(loaded) -> tuple[int, ...]:
    """The shape of the model's examples, as its sampler makes them."""
    return tuple(loaded.sampler.init_state(1, device="cpu").shape[1:])


def read_sets(loaded, specs: list[str], n: int | None, seed: int) -> list[ImageSet]:
    from genframe.plugins import get_host

    return parse_inputs(specs, example_shape(loaded), loaded.config.data, get_host().registry, n, seed)


def score_sets(loaded, sets: list[ImageSet], kind: str | None, seed: int,
               progress: Callable[[int], None] | None = None,
               rows: Callable[[str, int, torch.Tensor], None] | None = None) -> dict[str, torch.Tensor]:
    """Every set's scores, chunk by chunk; ``rows(set_name, first_index, scores)`` sees each chunk's."""
    _, function = score_function(loaded, kind)  # looked up once, not per chunk
    out: dict[str, torch.Tensor] = {}
    for set_index, images in enumerate(sets):
        name = images.name if images.name not in out else f"{images.name} ({set_index + 1})"
        parts, done = [], 0
        for chunk_index, (batch, _) in enumerate(images.chunks(CHUNK)):
            scores = score_images(loaded, batch, function, seed, stream=(set_index, chunk_index))
            if not torch.isfinite(scores).all():
                raise RunError(f"the model scored {int((~torch.isfinite(scores)).sum())} images of {images.name} as "
                               f"NaN or infinite; the model has diverged: score an earlier checkpoint")
            if rows is not None:
                rows(name, done, scores)
            parts.append(scores)
            done += len(scores)
            if progress is not None:
                progress(len(scores))
        out[name] = torch.cat(parts) if parts else torch.empty(0)
    return out


def summary(scores: torch.Tensor) -> dict[str, float]:
    values = scores.double()
    return {"n": len(values), "mean": float(values.mean()), "std": float(values.std()) if len(values) > 1 else 0.0,
            "min": float(values.min()), "median": float(values.median()), "max": float(values.max())}


def score_to_files(path: str | Path, inputs: list[str], out: str | Path | None = None,
                   plot: str | Path | None = None, kind: str | None = None, n: int | None = None, seed: int = 0,
                   device: str = "auto", progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Score each input set; write every score to the CSV ``out`` (input,index,score) as it is made and a
    histogram of each set's scores to ``plot``; return a summary per set."""
    from genframe.api import check_output_paths, load
    from genframe.histogram import check_picture_path, draw_histograms

    check_output_paths({"--out": out, "--plot": plot})
    if plot is not None:
        check_picture_path(plot)
    loaded = load(path, device)
    kind, _ = score_function(loaded, kind)
    sets = read_sets(loaded, inputs, n, seed)
    scores: dict[str, torch.Tensor] = {}
    start = time.perf_counter()

    def write(handle) -> None:
        handle.write(b"input,index,score\n")

        def rows(name: str, first: int, values: torch.Tensor) -> None:
            quoted = '"' + name.replace('"', '""') + '"'
            handle.write("".join(f"{quoted},{first + i},{v:.6g}\n" for i, v in enumerate(values.tolist())).encode())

        scores.update(score_sets(loaded, sets, kind, seed, progress, rows))

    if out is not None:
        atomic_write(out, write)
    else:
        scores.update(score_sets(loaded, sets, kind, seed, progress))
    report = {"recipe": loaded.recipe_name, "checkpoint": str(loaded.checkpoint), "step": loaded.step,
              "score": kind, "seconds": round(time.perf_counter() - start, 2),
              "sets": {name: summary(values) for name, values in scores.items()}}
    if plot is not None:
        report["plot"] = str(draw_histograms(scores, plot, f"{kind} (higher = more typical)",
                                             f"{loaded.recipe_name} at step {loaded.step}"))
    if out is not None:
        report["csv"] = str(out)
    return report


def detect_ood(path: str | Path, inside: str | None = None, outsides: list[str] | None = None,
               kind: str | None = None, n: int | None = None, seed: int = 0, device: str = "auto",
               plot: str | Path | None = None, progress: Callable[[int], None] | None = None,
               log: bool = True) -> dict[str, Any]:
    """How well the score tells the in-set (default: the run's test split) from each out-set (default: the
    built-in ones): AUROC, AUPR (in-set positive) and FPR at 95% TPR. Writes ``RUN_DIR/ood.json``, the
    overlaid histograms to ``plot`` (default ``RUN_DIR/ood.png``) and sends the figures to the run's loggers."""
    from genframe.api import check_output_paths, load
    from genframe.detection import separation
    from genframe.histogram import check_picture_path, draw_histograms

    if plot is not None:
        check_output_paths({"--plot": plot})
        check_picture_path(plot)
    loaded = load(path, device)
    kind, _ = score_function(loaded, kind)
    run_dir = run_dir_of(loaded.checkpoint)
    check_output_paths({"the report": run_dir / OOD_NAME})  # writable before the work, not after
    inside = inside or f"{loaded.config.data.name}:test"
    outsides = list(outsides or DEFAULT_OUT_SETS)
    sets = read_sets(loaded, [inside, *outsides], n, seed)
    if len(sets) < 2:
        raise RunError("give at least one out-set (--out) besides the in-set")
    start = time.perf_counter()
    scores = score_sets(loaded, sets, kind, seed, progress)
    names = list(scores)
    reference = scores[names[0]]
    report = {"recipe": loaded.recipe_name, "checkpoint": str(loaded.checkpoint), "step": loaded.step,
              "score": kind, "seed": seed, "seconds": round(time.perf_counter() - start, 2),
              "in": {"name": names[0], **summary(reference)},
              "out": {name: {**separation(reference, scores[name]), **summary(scores[name])} for name in names[1:]}}
    plot = Path(plot) if plot is not None else run_dir / "ood.png"
    report["plot"] = str(draw_histograms(scores, plot, f"{kind} (higher = more typical)",
                                         f"{loaded.recipe_name} at step {loaded.step}: in-set {names[0]}"))
    atomic_write_text(run_dir / OOD_NAME, json.dumps(report, indent=2) + "\n")
    if log and not loaded.exported:
        _send_to_loggers(run_dir, loaded, report)
    return report


def metric_name(name: str) -> str:
    """A set's name as one part of a metric key every logger accepts (MLflow takes letters, digits and _-./ only,
    and refuses keys that are not normalised paths: a set named by a path keeps no slash)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def _send_to_loggers(run_dir: Path, loaded, report: dict[str, Any]) -> None:
    from genframe.evaluate import send_to_loggers

    metrics = {f"ood/{metric_name(name)}/{key}": values[key]
               for name, values in report["out"].items() for key in ("auroc", "aupr", "fpr95")}
    send_to_loggers(run_dir, loaded, metrics, {"ood_scores": Path(report["plot"])})


def format_ood(report: dict[str, Any]) -> str:
    """The table ``genframe ood`` prints."""
    width = max(24, *(len(name) + 2 for name in report["out"]))
    lines = [f"{report['recipe']} at step {report['step']}, score {report['score']!r}: in-set {report['in']['name']} "
             f"({report['in']['n']} images, mean score {report['in']['mean']:.4g})",
             f"{'out-set':{width}}{'n':>7}{'AUROC':>9}{'AUPR':>9}{'FPR@95':>9}{'mean score':>12}"]
    for name, values in report["out"].items():
        lines.append(f"{name:{width}}{values['n']:>7}{values['auroc']:9.4f}{values['aupr']:9.4f}"
                     f"{values['fpr95']:9.4f}{values['mean']:12.4g}")
    lines.append(f"histograms: {report['plot']}")
    return "\n".join(lines)


def format_scores(report: dict[str, Any]) -> str:
    """The summary ``genframe score`` prints: one row per input set."""
    width = max(24, *(len(name) + 2 for name in report["sets"]))
    lines = [f"{report['recipe']} at step {report['step']}, score {report['score']!r} (higher = more typical)",
             f"{'input':{width}}{'n':>7}{'mean':>10}{'std':>10}{'min':>10}{'median':>10}{'max':>10}"]
    for name, values in report["sets"].items():
        lines.append(f"{name:{width}}{values['n']:>7}" + "".join(f"{values[key]:10.4g}" for key in
                                                                 ("mean", "std", "min", "median", "max")))
    return "\n".join(lines)
