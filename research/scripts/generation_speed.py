"""Seconds per 1000 samples of trained models of any family, timed alone in interleaved rounds.

    python research/scripts/generation_speed.py ebm=runs/families/ebm-mnist-15min \
        flow=runs/families/flow-mnist-15min-seed0 vae=runs/families/vae-mnist-15min \
        --n 1000 --rounds 3 --out research/results/families_generation.json

Each spec is ``LABEL=RUN_OR_CHECKPOINT``. Every model draws ``--n`` samples with its run's own sampler and
generation steps, as ``genframe eval`` does (the same chunks), one model after another, round after round, so
a noisy machine slows each alike within a round; the figure is the median of the rounds. Time it on an idle
machine: ``genframe eval`` reports the same figure, but while other runs share the cores it counts their load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "benchmarks")]  # sgld_throughput's machine()

from genframe.util.openmp import spin_less

spin_less()  # as the genframe command does, before torch loads
from sgld_throughput import machine  # noqa: E402

import genframe  # noqa: E402
from genframe.config.batches import EVAL_CHUNK  # noqa: E402
from genframe.util.atomic import atomic_write_text  # noqa: E402


def at_least_one(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is below 1")
    return value


def parse_spec(text: str) -> tuple[str, str]:
    """``LABEL=RUN_OR_CHECKPOINT`` -> (label, path)."""
    label, sep, path = text.partition("=")
    if not (sep and label and path):
        raise SystemExit(f"Error: {text!r} is not LABEL=RUN_OR_CHECKPOINT (e.g. flow=runs/flow-fast)")
    if not Path(path).exists():
        raise SystemExit(f"Error: {path!r} (in {text!r}) does not exist; give a run directory or a checkpoint")
    return label, path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+", metavar="LABEL=RUN_OR_CHECKPOINT")
    p.add_argument("--n", type=at_least_one, default=1000, help="samples per timing")
    p.add_argument("--rounds", type=at_least_one, default=3)
    p.add_argument("--out", default=None, help="JSON of every round and the medians")
    args = p.parse_args()
    specs = [parse_spec(t) for t in args.specs]
    if len({label for label, _ in specs}) < len(specs):
        raise SystemExit("Error: a label is used twice; give each model its own label")
    try:
        models = {label: genframe.load(path) for label, path in specs}
    except genframe.GenframeError as error:
        raise SystemExit(f"Error: {genframe.one_line(error)}") from None
    rounds: dict[str, list[float]] = {label: [] for label in models}
    nfe: dict[str, int | None] = {}
    for r in range(args.rounds):
        for label, loaded in models.items():
            start = time.perf_counter()
            genframe.generate_in_chunks(loaded.sampler, loaded.model, args.n, None, r, stream=7,
                                        device=loaded.device, chunk=EVAL_CHUNK)
            rounds[label].append(round(1000 * (time.perf_counter() - start) / args.n, 3))
            nfe[label] = getattr(loaded.sampler, "last_nfe", None) or None
            print(f"round {r + 1}: {label} {rounds[label][-1]:.2f} s per 1000 samples", flush=True)
    report = {label: {"path": path, "recipe": models[label].recipe_name, "step": models[label].step,
                      "generate_steps": models[label].sampler.generate_steps, "nfe": nfe[label],
                      "seconds_per_1000": statistics.median(rounds[label]), "rounds": rounds[label]}
              for label, path in specs}
    for label, row in report.items():
        print(f"{label:>10}: {row['seconds_per_1000']:.2f} s per 1000 samples"
              + (f" ({row['nfe']} function evaluations)" if row["nfe"] else ""))
    if args.out:
        report |= {"settings": {"n": args.n, "rounds": args.rounds}, "machine": machine()}
        atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
