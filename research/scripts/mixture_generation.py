"""What generating from a mixture of snapshots costs against one net, with the fast recipe's settings.

    python research/scripts/mixture_generation.py [--n 10000] [--members 1 8] [--rounds 3] [--out FILE.json]

Builds the fast recipe's network (examples/ebm_mnist_fast.toml; random weights: the time of a
Langevin step does not depend on them) as one net and as mixtures of ``--members`` nets, and generates
``--n`` samples the way an evaluation does (``genframe.using.generation.generate_in_chunks``, the device's
default chunk, the recipe's 30 steps), alternating the variants in each round so that they share
whatever else the machine is doing. Prints the median seconds of each and its ratio to one net.
A mixture of K splits each chunk into K parts, one per member, so each member runs chunk / K chains
at a time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import genframe
from genframe.util.atomic import atomic_write_text
from genframe.using.generation import generate_in_chunks
from genframe_ebm.mixture import SnapshotMixture

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "examples" / "ebm_mnist_fast.toml"


def model_with(members: int, device: torch.device) -> tuple[torch.nn.Module, object]:
    recipe = genframe.get_recipe("ebm")
    config = genframe.recipe_config("ebm", RECIPE)
    torch.manual_seed(0)
    model = recipe.build_model(config)
    if members > 1:  # what the snapshot_mixture callback samples with: the net and members - 1 snapshots
        model = SnapshotMixture.around(model, members)
    return model.to(device).eval(), recipe.build_sampler(config)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--members", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    variants = {k: model_with(k, device) for k in args.members}
    seconds: dict[int, list[float]] = {k: [] for k in args.members}
    for round_index in range(args.rounds):
        for k, (model, sampler) in variants.items():
            began = time.perf_counter()
            generate_in_chunks(sampler, model, args.n, None, 0, stream=7, device=device)
            seconds[k].append(time.perf_counter() - began)
            print(f"round {round_index + 1}: {k} member(s) {seconds[k][-1]:.2f} s", flush=True)
    base = statistics.median(seconds[args.members[0]])
    result = {"n": args.n, "device": str(device), "torch_threads": torch.get_num_threads(),
              "variants": {str(k): {"median_s": statistics.median(s), "rounds": s,
                                    "ratio_to_first": statistics.median(s) / base} for k, s in seconds.items()}}
    for k, entry in result["variants"].items():
        print(f"{k} member(s): {entry['median_s']:.2f} s for {args.n} samples, {entry['ratio_to_first']:.2f}x "
              f"{args.members[0]} member(s)")
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
