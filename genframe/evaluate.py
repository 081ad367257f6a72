"""Evaluate a trained model's samples: ``genframe eval`` and ``genframe.evaluate``, and the
evaluations run during training (``eval.every_epochs`` / ``_minutes`` / ``_steps``).

Works for any recipe whose sampler produces images of its dataset's shape: the samples and the
dataset's test split go through the same cached classifier (see ``genframe.classifier``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from genframe.atomic import atomic_write_text
from genframe.checkpoint import run_dir_of
from genframe.classifier import ClassifierSpec, cache_dir, load_or_train
from genframe.config import DataConfig
from genframe.errors import DataError
from genframe.generation import generate_in_chunks
from genframe.metrics import features_and_probs, gaussian, quality
from genframe.registry import Registry
from genframe.runsetup import build_dataset

EVAL_NAME = "eval.json"
EVAL_CHUNK = 500  # fixed, so a figure does not depend on the device it was measured on


class Evaluator:
    """The classifier and reference statistics of one dataset, reused across evaluations."""

    def __init__(self, registry: Registry, data: DataConfig, spec: ClassifierSpec = ClassifierSpec()) -> None:
        full = data.model_copy(update={"limit": None})  # always the whole test set: comparable numbers
        self.train = build_dataset(registry, full, "train")
        test = build_dataset(registry, full, "test")
        if self.train.labels is None:
            raise DataError(f"dataset {data.name!r} has no labels; the quality metric needs a labelled dataset")
        num_classes = getattr(self.train, "num_classes", None) or int(self.train.labels.max()) + 1
        self.classifier = load_or_train(data.name, self.train, num_classes, spec)
        self.example_shape = test.example_shape
        self.reference = gaussian(features_and_probs(self.classifier, test.get_batch(torch.arange(len(test))))[0])
        self._anchors: dict[int, dict[str, dict[str, float]]] = {}

    def __call__(self, images: torch.Tensor) -> dict[str, float]:
        if tuple(images.shape[1:]) != tuple(self.example_shape):
            raise ValueError(f"samples of shape {tuple(images.shape[1:])} cannot be compared with "
                             f"{tuple(self.example_shape)} dataset images")
        return quality(self.classifier, images, self.reference)

    def anchors(self, n: int) -> dict[str, dict[str, float]]:
        """The scale for ``n`` samples: real training images (the floor) and uniform noise, vs test."""
        if n not in self._anchors:
            generator = torch.Generator().manual_seed(0)
            index = torch.randperm(len(self.train), generator=generator)[:n]
            noise = torch.rand((n, *self.example_shape), generator=generator) * 2 - 1
            self._anchors[n] = {"train": self(self.train.get_batch(index)), "noise": self(noise)}
        return self._anchors[n]


_SHARED: dict[tuple[str, str | None, str], Evaluator] = {}


def shared_evaluator(registry: Registry, data: DataConfig) -> Evaluator:
    """One Evaluator per dataset and cache folder in this process: evaluating many checkpoints is cheap."""
    key = (data.name, data.root, str(cache_dir()))
    if key not in _SHARED:
        _SHARED[key] = Evaluator(registry, data)
    return _SHARED[key]


def evaluate(path: str | Path, n: int = 1000, steps: int | None = None, seed: int = 0, device: str = "auto",
             log: bool = True) -> dict[str, Any]:
    """Generate ``n`` samples from a run or checkpoint and measure them; writes ``RUN_DIR/eval.json``."""
    from genframe.api import load
    from genframe.plugins import get_host

    loaded = load(path, device)
    evaluator = shared_evaluator(get_host().registry, loaded.config.data)
    start = time.perf_counter()
    images = generate_in_chunks(loaded.sampler, loaded.model, n, steps, seed, stream=7, device=loaded.device,
                                chunk=EVAL_CHUNK).images
    seconds = time.perf_counter() - start
    report = {
        "recipe": loaded.recipe_name, "checkpoint": str(loaded.checkpoint), "step": loaded.step,
        "dataset": loaded.config.data.name, "n": n, "steps": steps if steps is not None else loaded.sampler.generate_steps,
        "seed": seed, "generation_seconds": round(seconds, 2),
        "samples": evaluator(images), "anchors": evaluator.anchors(n),
    }
    run_dir = run_dir_of(loaded.checkpoint)
    atomic_write_text(run_dir / EVAL_NAME, json.dumps(report, indent=2) + "\n")
    if log:
        _send_to_loggers(run_dir, loaded, report)
    return report


def _send_to_loggers(run_dir: Path, loaded, report: dict[str, Any]) -> None:
    """Hand the result to the run's own loggers (not the console: the caller prints it)."""
    from genframe.plugins import attached_loggers, get_host
    from genframe.run import RunContext

    host = get_host()
    ctx = RunContext(run_dir, loaded.recipe_name, loaded.config, loaded.device, steps_per_epoch=1,
                     total_steps=loaded.step, step=loaded.step, epoch=loaded.epoch, resumed=True,
                     extra=dict(loaded.extra), purpose="eval")
    with attached_loggers(host, [n for n in loaded.config.logging.loggers if n != "console"], ctx):
        host.hook.genframe_run_start(run=ctx)
        metrics = {**{f"eval/{k}": v for k, v in report["samples"].items()}, "eval/n": report["n"]}
        host.hook.genframe_log(run=ctx, step=loaded.step, metrics=metrics, images={})
        host.hook.genframe_run_end(run=ctx, status="completed")


def format_report(report: dict[str, Any]) -> str:
    """The table ``genframe eval`` prints."""
    rows = [("samples", report["samples"]), ("train images (floor)", report["anchors"]["train"]),
            ("uniform noise", report["anchors"]["noise"])]
    steps = "one pass" if report["steps"] is None else f"{report['steps']} sampler steps"
    lines = [f"{report['recipe']} at step {report['step']}: {report['n']} samples, {steps}, "
             f"{report['generation_seconds']} s to generate; vs the {report['dataset']} test set",
             f"{'':22}{'fd':>10}{'confidence':>12}{'conf>0.9':>10}{'coverage':>10}"]
    for name, m in rows:
        lines.append(f"{name:22}{m['fd']:10.3f}{m['confidence']:12.3f}{m['confident']:10.3f}{m['coverage']:10.3f}")
    return "\n".join(lines)
