"""What a trained model's energy is good for, measured: out-of-distribution detection by each of the recipe's
scores, completion accuracy by mask and completion schedule, and denoising PSNR (docs/using-the-energy.md).

    python research/scripts/energy_uses.py RUN_OR_CHECKPOINT [--n 10000] [--complete-n 2000] [--out results.json]
        [--parts ood,inpaint,denoise] [--scores gradnorm,score] [--schedules plain,match10000/avg8+3]

OOD: the in-set is the MNIST test split, each out-set as many images (the test split's size by default).
Scores: the recipe's (``nearest``, ``gradnorm``, ``score``, ``drop``) and research ones measured here only:
``ensemble`` (a snapshot mixture's mean score), ``relaxed`` (the score after 5 Langevin steps), ``pixelsM``
(minus the pixel distance to the closest of M fresh samples), ``featuresM`` and ``featuresM@L`` (``nearest``
with M samples, and with the features after the first L layers of the net rather than those its head reads).
Completion: the first ``--complete-n`` test digits, each mask, read by the evaluation classifier.
Schedules (how hidden pixels are completed; ``plain`` is what ``genframe inpaint --match 0`` does):
- ``plain``: the recipe's sampler, generation steps, hidden pixels started from its uniform noise;
- ``stepsN``: N steps instead;
- ``bestK``: K completions per image, the one the trained net scores highest kept;
- ``net``: the trained net alone rather than the snapshot mixture the run samples with;
- ``matchM+S``: the hidden pixels from the one of M fresh samples closest to the image on its known pixels,
  then S sampler steps with the known pixels held; ``matchM/avgK+S`` from the mean of the K closest (what
  ``genframe inpaint`` does, M = 10000, K = 8, S = 3); ``matchM/kK+S``, ``matchM/nK+S`` and ``matchM/fK+S`` from
  the one of the K closest that the trained net's score, or the ``nearest`` score, finds most typical with the
  known pixels in, or whose net features change least when they are pasted in.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import genframe
from genframe.using.completion import add_noise, closest_on_known, inpaint_images, psnr
from genframe.using.completion_files import LabelReader
from genframe.using.detection import separation
from genframe.using.masks import known_pixels
from genframe.using.scoring import read_sets, score_sets

OUT_SETS = ["fashion_mnist:test", "noise", "gaussian", "constant", "inverted", "flipped", "flipped:2,4,5,7"]
MASKS = ["bottom-half", "left-half", "center", "random:0.5"]


def ood(loaded, kinds: list[str], n: int | None) -> dict:
    sets = read_sets(loaded, ["mnist:test", *OUT_SETS], n, seed=0)
    table = {}
    for kind in kinds:
        start = time.perf_counter()
        if kind.startswith(("pixels", "features")):  # research: minus the distance to the closest of M samples
            count, _, cut = kind.removeprefix("pixels").removeprefix("features").partition("@")
            pool = _pool(loaded, int(count), 0)
            if kind.startswith("features") and not cut:  # the nearest score, with these M samples
                from genframe_ebm.scores import SampleFeatures, features, trained_net

                net = trained_net(loaded.model)
                reference = SampleFeatures(net, pool)
                distance = lambda batch: reference.distance(features(net, batch))  # noqa: E731
            else:
                describe = _describer(loaded, kind.startswith("pixels"), int(cut) if cut else None)
                described = describe(pool)
                distance = lambda batch: torch.cdist(describe(batch), described).min(1).values  # noqa: E731
            scores = {s.name: torch.cat([-distance(batch) for batch, _ in s.chunks(500)]) for s in sets}
        elif kind in RESEARCH_SCORES:
            scores = {s.name: torch.cat([RESEARCH_SCORES[kind](loaded, batch) for batch, _ in s.chunks(500)])
                      for s in sets}
        else:
            scores = score_sets(loaded, sets, kind, seed=0)
        names = list(scores)
        table[kind] = {name: separation(scores[names[0]], scores[name]) for name in names[1:]}
        table[kind]["seconds"] = round(time.perf_counter() - start, 1)
        print(kind, {name: round(v["auroc"], 4) for name, v in table[kind].items() if name != "seconds"}, flush=True)
    return table


def _describer(loaded, pixels: bool, cut: int | None):
    """What the distance to the nearest sample is measured on: pixels, or the trained net's activations after
    its first ``cut`` layers."""
    from genframe_ebm.scores import trained_net

    net = trained_net(loaded.model)
    if pixels:
        return lambda images: images.flatten(1)
    return torch.no_grad()(lambda images: torch.cat([net.net[:cut](chunk).flatten(1) for chunk in images.split(1000)]))


def _ensemble(loaded, images):
    """The mean score of a snapshot mixture's members (no better than the trained net's: not shipped)."""
    with torch.no_grad():
        return torch.stack([net(images) for net in loaded.model.members]).mean(0)


def _relaxed(loaded, images):
    """The score after 5 Langevin steps from the image (worse than the raw score: not shipped)."""
    from genframe.training.runsetup import drawn_generator
    from genframe_ebm.scores import trained_net

    net = trained_net(loaded.model)
    settled = loaded.sampler.sample(net, images, steps=5, generator=drawn_generator(0, "relaxed")).images
    with torch.no_grad():
        return net(settled)


RESEARCH_SCORES = {"ensemble": _ensemble, "relaxed": _relaxed}


def complete(loaded, net, images, known, schedule: str, seed: int) -> torch.Tensor:
    """The completions of ``images`` under ``schedule`` (see the module's description)."""
    from genframe_ebm.scores import trained_net

    steps = None
    if schedule.startswith("steps"):
        steps = int(schedule[5:])
    if schedule == "net":
        loaded = _with_model(loaded, trained_net(loaded.model))
    if schedule.startswith("match"):  # matchM[/kK|/nK|/fK|/avgK][+S]: the nearest of M fresh samples on the
        # known pixels (with /kK: of the K nearest, the one the trained net scores highest once the known pixels are
        # pasted in; /nK: the one the nearest score finds most typical; /fK: the one whose features change least
        # when the known pixels are pasted in), then S sampler steps with the known pixels held
        rest, _, settle = schedule[5:].partition("+")
        pick = next((mode for mode in "knf" if f"/{mode}" in rest), "k")
        count, _, top = rest.replace("/n", "/k").replace("/f", "/k").partition("/k")
        count, _, average = count.partition("/avg")
        pool = _pool(loaded, int(count), seed)
        if average:  # the mean of the K nearest: their majority shape, sharpened by the S steps after it
            start = closest_on_known(pool, images, known, int(average)).mean(0)
        elif top:
            candidates = closest_on_known(pool, images, known, int(top))  # (K, n, C, H, W)
            pasted = torch.where(known, images, candidates)
            if pick == "n":
                from genframe_ebm.scores import nearest

                scores = torch.stack([nearest(loaded.model, loaded.sampler, c) for c in pasted])
            elif pick == "f":
                from genframe_ebm.scores import features

                scores = torch.stack([-sum((a - b).norm(dim=1) for a, b in zip(features(net, p), features(net, c)))
                                      for p, c in zip(pasted, candidates)])
            else:
                with torch.no_grad():
                    scores = torch.stack([net(c) for c in pasted])
            start = candidates[scores.argmax(0), torch.arange(images.shape[0])]
        else:
            start = closest_on_known(pool, images, known, 1)[0]
        return inpaint_from(loaded, images, known, start, int(settle or 0), seed)
    if schedule.startswith("best"):
        k = int(schedule[4:])
        tries = [inpaint_images(loaded, images, known, None, seed, stream=(attempt,)) for attempt in range(k)]
        with torch.no_grad():
            scores = torch.stack([net(t) for t in tries])  # (k, n)
        best = scores.argmax(0)
        return torch.stack(tries)[best, torch.arange(images.shape[0])]
    return inpaint_images(loaded, images, known, steps, seed)


_POOLS: dict = {}


def _pool(loaded, count: int, seed: int) -> torch.Tensor:
    from genframe.using.generation import generate_in_chunks

    key = (str(loaded.checkpoint), count, seed)
    if key not in _POOLS:
        import hashlib
        import os
        import tempfile

        cached = Path(tempfile.gettempdir()) / f"genframe-pool-{hashlib.sha256(repr(key).encode()).hexdigest()[:16]}.pt"
        if cached.exists() and cached.stat().st_mtime > os.stat(loaded.checkpoint).st_mtime:
            _POOLS[key] = torch.load(cached)
        else:
            _POOLS[key] = generate_in_chunks(loaded.sampler, loaded.model, count, None, seed, stream=11,
                                             device=loaded.device).images
            torch.save(_POOLS[key], cached)
    return _POOLS[key]


def inpaint_from(loaded, images, known, start, steps, seed):
    from genframe.training.runsetup import seeded_generator

    x = torch.where(known, images, start)
    if steps == 0:
        return x
    return loaded.sampler.refine(loaded.model, x, known, steps, seeded_generator(seed, 5, loaded.device))


def _with_model(loaded, model):
    from dataclasses import replace

    return replace(loaded, model=model)


def inpaint(loaded, masks: list[str], schedules: list[str], n: int) -> dict:
    from genframe_ebm.scores import trained_net

    (digits,) = read_sets(loaded, ["mnist:test"], n, seed=0)
    images, labels = next(digits.chunks(n))
    classifier = LabelReader(loaded, "mnist")
    net = trained_net(loaded.model)
    table = {"originals": classifier.correct(images, labels) / n}
    for mask in masks:
        known = known_pixels(mask, n, 32, 32, seed=0)
        row = {"masked": classifier.correct(torch.where(known, images, -1.0), labels) / n}
        for schedule in schedules:
            start = time.perf_counter()
            done = complete(loaded, net, images, known, schedule, seed=0)
            row[schedule] = classifier.correct(done, labels) / n
            row[f"{schedule} seconds"] = round(time.perf_counter() - start, 1)
        table[mask] = row
        print(mask, row, flush=True)
    return table


def denoise(loaded, n: int, noises: list[float], steps: list[int]) -> dict:
    from genframe.using.completion import denoise_images

    (digits,) = read_sets(loaded, ["mnist:test"], n, seed=0)
    images, _ = next(digits.chunks(n))
    table = {}
    for std in noises:
        noisy = add_noise(images, std, 0, 0)
        row = {"noisy": float(psnr(noisy, images).mean())}
        for count in steps:
            row[f"steps{count}"] = float(psnr(denoise_images(loaded, noisy, count), images).mean())
        table[str(std)] = row
        print("noise", std, row, flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--n", type=int, default=None, help="images per OOD set [default: 10000, the test split]")
    parser.add_argument("--complete-n", type=int, default=2000)
    parser.add_argument("--parts", default="ood,inpaint,denoise")
    parser.add_argument("--scores", default="nearest,gradnorm,score,drop,ensemble,relaxed,pixels10000")
    parser.add_argument("--schedules", default="plain")
    parser.add_argument("--masks", default=",".join(MASKS))
    parser.add_argument("--denoise-steps", default="1,2,5")
    parser.add_argument("--out")
    args = parser.parse_args()
    loaded = genframe.load(args.path, device="cpu")
    result = {"checkpoint": str(loaded.checkpoint), "step": loaded.step, "torch_threads": torch.get_num_threads()}
    parts = args.parts.split(",")
    if "ood" in parts:
        result["ood"] = ood(loaded, args.scores.split(","), args.n)
    if "inpaint" in parts:
        result["inpaint"] = inpaint(loaded, args.masks.split(","), args.schedules.split(","), args.complete_n)
    if "denoise" in parts:
        result["denoise"] = denoise(loaded, args.complete_n, [0.3], [int(s) for s in args.denoise_steps.split(",")])
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
