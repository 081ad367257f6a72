"""Does bf16 sampling change what a trained model generates? The fd of the same model's samples with fp32 and
bf16 chains, each over several generation seeds, against the spread of the fd from seed to seed.

    python research/scripts/precision_quality.py RUN [RUN ...]                 # seeds 1-5, 10000 samples each
    python research/scripts/precision_quality.py RUN --seeds 1 2 --n 500       # smoke run

The model, its sampler settings and the ruler are the run's own (as ``genframe eval`` uses them), only
``sampler.precision`` differs; the draws interleave (seed 1 fp32, seed 1 bf16, ...). bf16 chains draw their
noise in the kernel, so the two precisions never share a chain: the question is whether the fd moves by
more than it does between two seeds of one precision. Writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

import genframe
from genframe.util.atomic import atomic_write_text
from genframe.config.batches import EVAL_CHUNK
from genframe.using.evaluate import shared_evaluator
from genframe.using.generation import generate_in_chunks
from genframe.plugins.host import get_host
from genframe.plugins.recipes import get_recipe

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "precision_quality.json"
PRECISIONS = ("fp32", "bf16")


def compare(runs: list[str], seeds: list[int], n: int) -> dict:
    """Per run: the fd (and confidence, class spread) of each seed's samples with each precision, and their means."""
    results = {}
    for path in runs:
        loaded = genframe.load(path, device="cpu")
        evaluator = shared_evaluator(get_host().registry, loaded.config.data, get_recipe(loaded.recipe_name),
                                     loaded.config)
        draws = {precision: [] for precision in PRECISIONS}
        for seed in seeds:
            for precision in PRECISIONS:
                loaded.sampler.precision = precision
                samples = generate_in_chunks(loaded.sampler, loaded.model, n, None, seed, stream=7,
                                             device=loaded.device, chunk=EVAL_CHUNK).images
                draws[precision].append(evaluator(samples))
                print(f"{path} seed {seed} {precision}: fd {draws[precision][-1]['fd']:.3f}", flush=True)
        row = {"step": loaded.step, "n": n, "seeds": seeds}
        for precision, values in draws.items():
            fds = [v["fd"] for v in values]
            row[precision] = {"fd": [round(f, 3) for f in fds], "fd_mean": round(statistics.mean(fds), 3),
                              "fd_sd": round(statistics.stdev(fds), 3) if len(fds) > 1 else 0.0,
                              **{f"{k}_mean": round(statistics.mean(v[k] for v in values), 4)
                                 for k in ("confidence", "class_spread")}}
        gap = row["bf16"]["fd_mean"] - row["fp32"]["fd_mean"]
        row["bf16_minus_fp32"] = round(gap, 3)
        results[path] = row
        print(f"{path} (step {row['step']}, {n} samples, seeds {seeds}): fd fp32 {row['fp32']['fd_mean']:.3f}"
              f" +- {row['fp32']['fd_sd']:.3f}, bf16 {row['bf16']['fd_mean']:.3f} +- {row['bf16']['fd_sd']:.3f}; "
              f"bf16 - fp32 = {gap:+.3f}; confidence {row['fp32']['confidence_mean']:.4f} / "
              f"{row['bf16']['confidence_mean']:.4f}, class spread {row['fp32']['class_spread_mean']:.4f} / "
              f"{row['bf16']['class_spread_mean']:.4f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    results = compare(args.runs, args.seeds, args.n)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps({"benchmark": "precision_quality", "torch": torch.__version__,
                                            "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
