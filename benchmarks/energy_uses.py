"""What a trained model's energy is good for, measured: out-of-distribution detection by each of the recipe's
scores, completion accuracy by mask and completion schedule, and denoising PSNR (docs/using-the-energy.md).

    python benchmarks/energy_uses.py RUN_OR_CHECKPOINT [--n 10000] [--complete-n 2000] [--out results.json]
        [--parts ood,inpaint,denoise] [--scores score,gradnorm] [--schedules plain,best8]

OOD: the in-set is the MNIST test split, each out-set as many images (the test split's size by default).
Completion: the first ``--complete-n`` test digits, each mask, read by the evaluation classifier.
Schedules (how hidden pixels are completed; ``plain`` is what ``genframe inpaint`` does):
- ``plain``: the recipe's sampler, generation steps, hidden pixels started from its uniform noise;
- ``stepsN``: N steps instead;
- ``bestK``: K completions per image, the one the trained net scores highest kept;
- ``net``: the trained net alone rather than the snapshot mixture the run samples with.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import genframe
from genframe.completion import add_noise, inpaint_images, psnr, _Classifier
from genframe.detection import separation
from genframe.masks import known_pixels
from genframe.scoring import read_sets, score_sets

OUT_SETS = ["fashion_mnist:test", "noise", "gaussian", "constant", "inverted", "flipped", "flipped:2,4,5,7"]
MASKS = ["bottom-half", "left-half", "center", "random:0.5"]


def ood(loaded, kinds: list[str], n: int | None) -> dict:
    sets = read_sets(loaded, ["mnist:test", *OUT_SETS], n, seed=0)
    table = {}
    for kind in kinds:
        start = time.perf_counter()
        scores = score_sets(loaded, sets, kind, seed=0)
        names = list(scores)
        table[kind] = {name: separation(scores[names[0]], scores[name]) for name in names[1:]}
        table[kind]["seconds"] = round(time.perf_counter() - start, 1)
        print(kind, {name: round(v["auroc"], 4) for name, v in table[kind].items() if name != "seconds"}, flush=True)
    return table


def complete(loaded, net, images, known, schedule: str, seed: int) -> torch.Tensor:
    """The completions of ``images`` under ``schedule`` (see the module's description)."""
    from genframe_ebm.scores import trained_net

    steps = None
    if schedule.startswith("steps"):
        steps = int(schedule[5:])
    if schedule == "net":
        loaded = _with_model(loaded, trained_net(loaded.model))
    if schedule.startswith("best"):
        k = int(schedule[4:])
        tries = [inpaint_images(loaded, images, known, None, seed, stream=attempt) for attempt in range(k)]
        with torch.no_grad():
            scores = torch.stack([net(t) for t in tries])  # (k, n)
        best = scores.argmax(0)
        return torch.stack(tries)[best, torch.arange(images.shape[0])]
    return inpaint_images(loaded, images, known, steps, seed)


def _with_model(loaded, model):
    from dataclasses import replace

    return replace(loaded, model=model)


def inpaint(loaded, masks: list[str], schedules: list[str], n: int) -> dict:
    from genframe_ebm.scores import trained_net

    (digits,) = read_sets(loaded, ["mnist:test"], n, seed=0)
    images, labels = next(digits.chunks(n))
    classifier = _Classifier(loaded, "mnist")
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
    from genframe.completion import denoise_images

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
    parser.add_argument("--scores", default="score,ensemble,gradnorm,relaxed,drop")
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
