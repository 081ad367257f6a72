"""One trained flow model sampled by each ODE solver from the same noise, on one ruler.

    python research/scripts/flow_solvers.py runs/flow-trials/s1500-lr2e-3-logit --n 2000 \
        --solvers euler:20 midpoint:20 heun:40 heun:10 adaptive:20 --out research/results/flow_solvers.json

Each solver scores a copy of the run (``genframe eval`` writes ``eval.json`` into the run it measures) with the
loaded sampler's ``method`` swapped in, the same seed and so the same starting noise; ``NFE`` is the fixed
solvers' budget and the adaptive solver's starting guess (it reports what it used).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import genframe.using.evaluate as evaluation
from genframe.util.atomic import atomic_write_text

KEPT = ("fd", "kid", "precision", "recall", "confidence")


def scored_with(run: Path, method: str, nfe: int, n: int, seed: int) -> dict:
    load = evaluation.load

    def load_with_method(path, device):
        loaded = load(path, device)
        loaded.sampler.method = method
        return loaded

    with tempfile.TemporaryDirectory(prefix="genframe-solvers-") as base:
        copy = Path(base) / run.name
        shutil.copytree(run, copy)
        evaluation.load = load_with_method
        try:
            report = evaluation.evaluate(copy, n=n, steps=nfe, seed=seed, log=False)
        finally:
            evaluation.load = load
    return {"nfe": report["nfe"], "s_per_1000": report["seconds_per_1000"],
            **{k: round(float(report["samples"][k]), 3) for k in KEPT}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--solvers", nargs="+", default=["euler:20", "midpoint:20", "heun:20"], metavar="METHOD:NFE")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    results = {}
    for spec in args.solvers:
        method, _, nfe = spec.partition(":")
        results[spec] = scored_with(args.run, method, int(nfe), args.n, args.seed)
        print(spec, results[spec], flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps({"run": str(args.run), "n": args.n, "solvers": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
