"""Inpainting and denoising to files, as ``genframe inpaint`` and ``genframe denoise`` do: read images, load the
model, complete them in chunks, write pictures, tensors and a report.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genframe.contracts.errors import NoQualityMetric, RunError
from genframe.plugins.registry import following_runs
from genframe.training.checkpoint import run_dir_of
from genframe.training.runsetup import drawn_generator
from genframe.using.completion import (
    HIDDEN_SHOWN_AS,
    MATCH_NEIGHBOURS,
    MATCH_SAMPLES,
    MATCH_STEPS,
    _check_refines,
    add_noise,
    denoise_images,
    inpaint_images,
    match_pool,
    psnr,
)
from genframe.using.masks import known_pixels
from genframe.using.scoring import CHUNK, read_sets
from genframe.util.atomic import atomic_write, atomic_write_text

INPAINT_NAME, DENOISE_NAME = "inpaint.json", "denoise.json"


class LabelReader:
    """The quality classifier of a labelled image set's dataset, or nothing to read labels with."""

    def __init__(self, loaded, dataset: str | None) -> None:
        self.model, self.why = None, "the images have no labels"
        if dataset is None:
            return
        from genframe.plugins.host import get_host
        from genframe.using.evaluate import shared_evaluator

        data = loaded.config.data.model_copy(update={"name": dataset, "path": None, "size": None, "channels": None})
        try:
            self.model = shared_evaluator(get_host().registry, data).classifier
        except NoQualityMetric as exc:
            self.why = str(exc)

    def correct(self, images: torch.Tensor, labels: torch.Tensor) -> int:
        from genframe.using.metrics import features_and_probs

        return int((features_and_probs(self.model, images)[1].argmax(1) == labels).sum())


def _picture(rows: list[torch.Tensor], path: Path, per_row: int = 8) -> Path:
    """Blocks of ``per_row`` images, one row from each tensor of ``rows`` (e.g. masked, completed, original)."""
    blocks = []
    for start in range(0, rows[0].shape[0], per_row):
        blocks += [row[start:start + per_row] for row in rows]
    from genframe.util.images import save_grid

    return save_grid(torch.cat(blocks), path, nrow=min(per_row, rows[0].shape[0]))


def _each_chunk(image_set, tensor: str | Path | None, progress: Callable[[int], None] | None,
                work: Callable[[int, torch.Tensor, torch.Tensor | None, int], torch.Tensor]) -> int:
    """Call ``work(index, images, labels, first_row)`` on each chunk of ``image_set`` and stream what it returns to
    ``tensor`` (a ``.npy``, written atomically) if given; returns the number of images done."""
    from genframe.using.generation import NpyWriter

    done = 0

    def write(handle) -> None:
        nonlocal done
        writer = NpyWriter(handle, image_set.count) if handle is not None else None
        for index, (batch, labels) in enumerate(image_set.chunks(CHUNK)):
            output = work(index, batch, labels, done)
            if writer is not None:
                writer.append(output)
            done += batch.shape[0]
            if progress is not None:
                progress(batch.shape[0])
        if writer is not None:
            writer.close()

    if tensor is None:
        write(None)
    else:
        atomic_write(tensor, write)
    return done


def _report(loaded, image_set, seed: int, start: float, **fields: Any) -> dict[str, Any]:
    return {"recipe": loaded.recipe_name, "checkpoint": str(loaded.checkpoint), "step": loaded.step,
            "images": image_set.name, **fields, "seed": seed, "seconds": round(time.perf_counter() - start, 2)}


@following_runs
def inpaint_to_files(path: str | Path, images: str, mask: str = "bottom-half", n: int = 1000,
                     steps: int | None = None, seed: int = 0, device: str = "auto", out: str | Path = "inpaint.png",
                     grid_n: int = 32, tensor: str | Path | None = None,
                     progress: Callable[[int], None] | None = None, match: int = MATCH_SAMPLES,
                     match_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Complete the first ``n`` images of ``images`` with ``mask``'s pixels hidden, each started from the
    ``match`` fresh samples closest on its known pixels (0: from the sampler's noise); write a picture of
    (masked, completed, original) for the first ``grid_n`` to ``out``, every completion to ``tensor`` (a
    ``.npy``) and the report to ``RUN_DIR/inpaint.json``; measure label accuracy when the images have labels."""
    from genframe.using.load import load
    from genframe.using.outputs import check_output_paths, picture_name

    check_output_paths({"--out": picture_name("--out", out, ".png"), "--tensor": tensor})
    loaded = load(path, device)
    _check_refines(loaded)
    check_output_paths({"the report": run_dir_of(loaded.checkpoint) / INPAINT_NAME})
    (image_set,) = read_sets(loaded, [images], n, seed)
    _, height, width = _shape(loaded)
    known_pixels(mask, 1, height, width, seed)  # a bad mask is one line before any work
    classifier = LabelReader(loaded, image_set.dataset)
    match = 0 if loaded.sampler.completes_from_noise else match  # its refine starts from its own noise
    pool = match_pool(loaded, match, seed, match_progress) if match else None
    counts = {"originals": 0, "masked": 0, "completions": 0, "noise completions": 0}
    kept: list[list[torch.Tensor]] = [[], [], []]
    start = time.perf_counter()

    def work(index: int, batch: torch.Tensor, labels: torch.Tensor | None, first: int) -> torch.Tensor:
        known = known_pixels(mask, batch.shape[0], height, width, seed, offset=first)
        completed = inpaint_images(loaded, batch, known, steps, seed, stream=(0, index), pool=pool)
        if classifier.model is not None and labels is not None:
            noise = loaded.sampler.init_state(batch.shape[0], generator=drawn_generator(seed, "noise to complete", index))
            filled = inpaint_images(loaded, noise, known, steps, seed, stream=(1, index), pool=pool)
            for name, shown in (("originals", batch), ("masked", torch.where(known, batch, -1.0)),
                                ("completions", completed), ("noise completions", filled)):
                counts[name] += classifier.correct(shown, labels)
        _keep(kept, [torch.where(known, batch, torch.full_like(batch, HIDDEN_SHOWN_AS)), completed, batch], grid_n)
        return completed

    done = _each_chunk(image_set, tensor, progress, work)
    report = _report(loaded, image_set, seed, start, mask=mask, n=done, match=match,
                     steps=steps if steps is not None else MATCH_STEPS if match else loaded.sampler.generate_steps,
                     picture=str(_picture([torch.cat(k) for k in kept], Path(out))))
    if classifier.model is not None and image_set.count:
        report["accuracy"] = {name: count / done for name, count in counts.items()}
    else:
        report["no_accuracy"] = classifier.why
    if tensor is not None:
        report["tensor"] = str(tensor)
    atomic_write_text(run_dir_of(loaded.checkpoint) / INPAINT_NAME, json.dumps(report, indent=2) + "\n")
    return report


@following_runs
def denoise_to_files(path: str | Path, images: str, noise: float = 0.3, n: int = 1000, steps: int | None = None,
                     seed: int = 0, device: str = "auto", out: str | Path = "denoise.png", grid_n: int = 32,
                     tensor: str | Path | None = None,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Add Gaussian noise of std ``noise`` to the first ``n`` images of ``images`` and clean them with the model;
    report the mean PSNR against the clean images before and after, write a picture of (noisy, cleaned,
    clean) to ``out``, every cleaned image to ``tensor`` and the report to ``RUN_DIR/denoise.json``."""
    from genframe.using.load import load
    from genframe.using.outputs import check_output_paths, picture_name

    if not (math.isfinite(noise) and noise > 0):
        raise RunError(f"--noise {noise}: give the noise's standard deviation, a positive number (e.g. 0.3)")
    check_output_paths({"--out": picture_name("--out", out, ".png"), "--tensor": tensor})
    loaded = load(path, device)
    _check_refines(loaded)
    check_output_paths({"the report": run_dir_of(loaded.checkpoint) / DENOISE_NAME})
    (image_set,) = read_sets(loaded, [images], n, seed)
    sums = {"noisy": 0.0, "denoised": 0.0}
    kept: list[list[torch.Tensor]] = [[], [], []]
    start = time.perf_counter()

    def work(index: int, batch: torch.Tensor, labels: torch.Tensor | None, first: int) -> torch.Tensor:
        noisy = add_noise(batch, noise, seed, first)
        cleaned = denoise_images(loaded, noisy, steps, seed, stream=(index,))
        sums["noisy"] += float(psnr(noisy, batch).sum())
        sums["denoised"] += float(psnr(cleaned, batch).sum())
        _keep(kept, [noisy, cleaned, batch], grid_n)
        return cleaned

    done = _each_chunk(image_set, tensor, progress, work)
    report = _report(loaded, image_set, seed, start, noise=noise, n=done,
                     steps=steps if steps is not None else loaded.sampler.denoise_steps or loaded.sampler.generate_steps,
                     psnr={name: total / max(done, 1) for name, total in sums.items()},
                     picture=str(_picture([torch.cat(k) for k in kept], Path(out))))
    if tensor is not None:
        report["tensor"] = str(tensor)
    atomic_write_text(run_dir_of(loaded.checkpoint) / DENOISE_NAME, json.dumps(report, indent=2) + "\n")
    return report


def _shape(loaded) -> tuple[int, ...]:
    from genframe.using.scoring import example_shape

    shape = example_shape(loaded)
    if len(shape) != 3:
        raise RunError(f"recipe {loaded.recipe_name!r} makes examples of shape {shape}, not images; masks hide pixels "
                       f"of images (C, H, W)")
    return shape


def _keep(kept: list[list[torch.Tensor]], rows: list[torch.Tensor], limit: int) -> None:
    have = sum(part.shape[0] for part in kept[0])
    if have < limit:
        for store, row in zip(kept, rows):
            store.append(row[:limit - have].clone())


def format_inpaint(report: dict[str, Any]) -> str:
    start = f"from the mean of the {MATCH_NEIGHBOURS} closest of {report['match']} samples" if report["match"] \
        else "from noise"
    lines = [f"{report['recipe']} at step {report['step']}: {report['n']} images of {report['images']}, mask "
             f"{report['mask']}, {start}, {report['steps']} sampler steps, {report['seconds']} s"]
    if "accuracy" in report:
        lines.append("classified as their original's label:")
        labels = {"originals": "originals (ceiling)", "masked": "masked, hidden pixels black",
                  "completions": "completions", "noise completions": "completions of noise (floor)"}
        lines += [f"  {labels[name]:32}{value:8.3f}" for name, value in report["accuracy"].items()]
    else:
        lines.append(f"no accuracy measured: {report['no_accuracy']}")
    lines.append(f"picture (masked, completed, original): {report['picture']}")
    return "\n".join(lines)


def format_denoise(report: dict[str, Any]) -> str:
    psnr_ = report["psnr"]
    return "\n".join([
        f"{report['recipe']} at step {report['step']}: {report['n']} images of {report['images']}, noise std "
        f"{report['noise']}, {report['steps']} sampler steps, {report['seconds']} s",
        f"PSNR against the clean images: noisy {psnr_['noisy']:.2f} dB, denoised {psnr_['denoised']:.2f} dB",
        f"picture (noisy, denoised, clean): {report['picture']}"])
