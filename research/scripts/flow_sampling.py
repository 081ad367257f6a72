"""Sampling-only trials on one trained flow model: a scale on the starting noise (a temperature) and a warped
time grid, scored on one ruler with no training.

    python research/scripts/flow_sampling.py RUN OUT.json N SCALE:SHIFT [SCALE:SHIFT ...]
    python research/scripts/flow_sampling.py runs/families/flow-mnist-30min-seed0 \
        research/results/flow_sampling.json 2000 1:1 0.9:1 0.8:1 1:0.5 1:2 0.9:2

SCALE multiplies the sampler's starting noise. SHIFT warps the solver's equal steps u in [0, 1] to the path's
times t = a u / (1 + (a - 1) u), integrating g'(u) v(x, g(u)) over u: a < 1 spends more steps near the noise,
a > 1 near the data; 1:1 is the recipe's sampler. Each trial scores a copy of the run (``genframe eval`` writes
into the run it measures) with the same seed; finished trials in OUT are skipped.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import genframe.using.evaluate as evaluation
from genframe.util.atomic import atomic_write_text

KEPT = ("fd", "kid", "precision", "recall", "confidence")


def scored(run: Path, n: int, scale: float, shift: float) -> dict:
    """``genframe eval``'s figures for ``run`` sampled with the noise scaled and the time grid warped."""
    load = evaluation.load

    def patched(path, device):
        loaded = load(path, device)
        sampler, init, velocity = loaded.sampler, loaded.sampler.init_state, type(loaded.sampler).velocity
        sampler.init_state = lambda k, device="cpu", generator=None: scale * init(k, device, generator)

        def warped(model):
            f = velocity(model)
            return lambda x, u: shift / (1 + (shift - 1) * u) ** 2 * f(x, shift * u / (1 + (shift - 1) * u))

        sampler.velocity = warped
        return loaded

    with tempfile.TemporaryDirectory(prefix="genframe-sampling-") as base:
        copy = Path(base) / run.name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("samples", "previous.pt"))
        evaluation.load = patched
        try:
            report = evaluation.evaluate(copy, n=n, seed=0, log=False)
        finally:
            evaluation.load = load
    return {k: round(float(report["samples"][k]), 3) for k in KEPT} | {"s_per_1000": report["seconds_per_1000"]}


def main() -> None:
    if len(sys.argv) < 5:
        raise SystemExit("Error: give RUN OUT.json N SCALE:SHIFT [SCALE:SHIFT ...], e.g. runs/flow out.json 2000 1:1")
    run, out, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    results = json.loads(out.read_text()) if out.is_file() else {}
    for spec in sys.argv[4:]:
        if spec in results:
            continue
        scale, shift = (float(v) for v in spec.split(":"))
        results[spec] = scored(run, n, scale, shift)
        print(spec, results[spec], flush=True)
        atomic_write_text(out, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
