"""Seconds per training step of any family's recipe, to put runs of different families on one ruler of minutes.

    python research/scripts/family_speed.py "recipe=ebm:examples/ebm_fashion_fast.toml" \
        "vae=vae:examples/plugins/genframe-vae/vae_mnist.toml" --set data.name=fashion_mnist \
        --rounds 3 --steps 40 --out research/results/fashion_speed.json

Each spec is ``LABEL=RECIPE:CONFIG``, optionally followed by ``@KEY=VALUE`` overrides of its own (for
trials of one recipe: ``"b16=ebm:examples/ebm_mnist_quick.toml@trainer.batch_size=16"``). The specs are timed
in turn, round after round (a noisy machine slows every spec alike within a round), each for ``--warmup`` steps
and then ``--steps`` more, with the machine's own threads and no evaluation (the script sets the run length,
logging and evaluation, over any ``--set`` of the same keys); a round's figure is the median of the run's
logged 10-step intervals after the warm-up, and the result is the median of the rounds. ``families.py`` takes
these figures as ``@S_PER_STEP``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

# research/scripts/ (fast_recipe) and benchmarks/ (sgld_throughput), whatever the working directory
sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2] / "benchmarks")]

from genframe.util.openmp import spin_less

spin_less()  # as the genframe command does, before torch loads
from fast_recipe import seconds_per_step  # noqa: E402 - research/scripts/ is on sys.path
from genframe.util.atomic import atomic_write_text  # noqa: E402
from sgld_throughput import machine  # noqa: E402

RESERVED = {"settings", "machine"}  # keys of the JSON beside the labels


def at_least(low: int):
    """An argparse type: a whole number no smaller than ``low``."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is below {low}")
        return value
    return parse


def parse_specs(texts: list[str]) -> list[tuple[str, str, str, list[str]]]:
    """Every spec parsed; labels unique and none of the JSON's own keys."""
    specs = [parse_spec(t) for t in texts]
    labels = [label for label, *_ in specs]
    for label in labels:
        if label in RESERVED or labels.count(label) > 1:
            raise SystemExit(f"Error: label {label!r} is used twice or is one of {sorted(RESERVED)}; give each "
                             f"spec its own label")
    return specs


def parse_spec(text: str) -> tuple[str, str, str, list[str]]:
    """``LABEL=RECIPE:CONFIG[@KEY=VALUE...]`` -> (label, recipe, config path, its own overrides)."""
    label, sep, rest = text.partition("=")
    recipe, sep2, config = rest.partition(":")
    config, *overrides = config.split("@")
    if not (sep and sep2 and label and recipe and config) or not all("=" in o for o in overrides):
        raise SystemExit(f"Error: {text!r} is not LABEL=RECIPE:CONFIG[@KEY=VALUE...] (e.g. vae=vae:examples/plugins/"
                         f"genframe-vae/vae_mnist.toml)")
    if not Path(config).is_file():
        raise SystemExit(f"Error: {config!r} (in {text!r}) is not a file; give a recipe's TOML config")
    return label, recipe, config, overrides


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+", metavar="LABEL=RECIPE:CONFIG")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="an override for every spec (e.g. data.name=fashion_mnist); repeat for more")
    p.add_argument("--rounds", type=at_least(1), default=3)
    p.add_argument("--warmup", type=at_least(0), default=20)
    p.add_argument("--steps", type=at_least(20), default=40, help="timed steps after the warm-up (rows every 10)")
    p.add_argument("--out", default=None, help="JSON of every round and the medians")
    args = p.parse_args()
    specs = parse_specs(args.specs)
    rounds: dict[str, list[float]] = {label: [] for label, *_ in specs}
    with tempfile.TemporaryDirectory(prefix="genframe-family-speed-") as base:
        for r in range(args.rounds):
            for index, (label, recipe, config, own) in enumerate(specs):
                run_dir = Path(base) / f"spec{index}-round{r}"
                s = seconds_per_step(config, args.warmup, args.steps, run_dir, recipe, [*args.overrides, *own])
                rounds[label].append(s)
                print(f"round {r + 1}: {label} {s:.4f} s/step", flush=True)
    result = {label: {"recipe": recipe, "config": config, "overrides": own,
                      "s_per_step": statistics.median(rounds[label]), "rounds": rounds[label]}
              for label, recipe, config, own in specs}
    result["settings"] = {"overrides": args.overrides, "warmup": args.warmup, "steps": args.steps}
    result["machine"] = machine()
    for label, *_ in specs:
        s = result[label]["s_per_step"]
        print(f"{label:>10}: {s:.4f} s/step, {60 / s:,.1f} steps per minute")
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
