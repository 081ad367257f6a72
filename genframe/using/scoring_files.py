"""Scoring to files, as ``genframe score`` and ``genframe ood`` do: load the model, score input sets, write the
report and histograms, hand the figures to the run's loggers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genframe.contracts.errors import RunError
from genframe.plugins.registry import following_runs
from genframe.training.checkpoint import run_dir_of
from genframe.using.scoring import DEFAULT_OUT_SETS, metric_name, read_sets, score_function, score_sets, summary
from genframe.util.atomic import atomic_write, atomic_write_text

OOD_NAME = "ood.json"


@following_runs
def score_to_files(path: str | Path, inputs: list[str], out: str | Path | None = None,
                   plot: str | Path | None = None, kind: str | None = None, n: int | None = None, seed: int = 0,
                   device: str = "auto", progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Score each input set; write every score to the CSV ``out`` (input,index,score) as it is made and a
    histogram of each set's scores to ``plot``; return a summary per set."""
    from genframe.using.histogram import check_picture_path, draw_histograms
    from genframe.using.load import load
    from genframe.using.outputs import check_output_paths

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


@following_runs
def detect_ood(path: str | Path, inside: str | None = None, outsides: list[str] | None = None,
               kind: str | None = None, n: int | None = None, seed: int = 0, device: str = "auto",
               plot: str | Path | None = None, progress: Callable[[int], None] | None = None,
               log: bool = True) -> dict[str, Any]:
    """How well the score tells the in-set (default: the run's test split) from each out-set (default: the
    built-in ones): AUROC, AUPR (in-set positive) and FPR at 95% TPR. Writes ``RUN_DIR/ood.json``, the
    overlaid histograms to ``plot`` (default ``RUN_DIR/ood.png``) and sends the figures to the run's loggers."""
    from genframe.using.detection import separation
    from genframe.using.histogram import check_picture_path, draw_histograms
    from genframe.using.load import load
    from genframe.using.outputs import check_output_paths

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


def _send_to_loggers(run_dir: Path, loaded, report: dict[str, Any]) -> None:
    from genframe.using.evaluate import send_to_loggers

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
