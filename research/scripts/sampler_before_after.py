"""The SGLD sampler's speed before and after a change, interleaved: ``benchmarks/sgld_throughput.py`` run on
two source trees in turn, round after round (the order flips each round), on the same machine.

    git worktree add /tmp/before <commit>     # the code before the change
    python research/scripts/sampler_before_after.py --before /tmp/before --rounds 5 \
        --out research/results/sampler_before_after.json

Each run times every path against a plain PyTorch loop in the same process, so a round's
ratio to plain cancels most of the machine's drift. Reported per path and batch: the median
img-steps/s of each tree, the median ratio to plain of each tree, and after/before with the rounds'
own spread (the min-max range of after/before across rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def one_run(tree: Path, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'plugins' / 'ebm'}"}
    command = [sys.executable, str(tree / "benchmarks" / "sgld_throughput.py"), "--rounds", "1", "--no-torchebm",
               "--steps", str(args.steps), "--impls", *args.impls, "--batch-sizes", *map(str, args.batch_sizes),
               "--precision", *args.precision, "--out", str(out)]
    subprocess.run(command, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree of the code before the change")
    parser.add_argument("--after", type=Path, default=REPO)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--impls", nargs="+", default=["autograd", "fused", "native"])
    parser.add_argument("--precision", nargs="+", default=["fp32"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128, 512])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    seen: dict[tuple[str, int], dict[str, list[tuple[float, float]]]] = {}
    machine = None
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(args.rounds):
            order = ["before", "after"] if round_index % 2 == 0 else ["after", "before"]
            for name in order:
                result = one_run(trees[name], args, Path(scratch) / f"{name}{round_index}.json")
                machine = machine or result["machine"]
                for row in result["results"]:
                    if row["variant"] == "plain":
                        continue
                    key = (row["variant"], row["batch"])
                    seen.setdefault(key, {}).setdefault(name, []).append((row["img_steps_per_s"], row["ratio_vs_plain"]))
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    rows = []
    for (variant, batch), by_tree in sorted(seen.items()):
        before, after = by_tree.get("before", []), by_tree.get("after", [])
        per_round = [a[1] / b[1] for b, a in zip(before, after)]
        row = {"variant": variant, "batch": batch,
               "before_img_steps_per_s": statistics.median(r for r, _ in before),
               "after_img_steps_per_s": statistics.median(r for r, _ in after),
               "before_ratio_vs_plain": statistics.median(q for _, q in before),
               "after_ratio_vs_plain": statistics.median(q for _, q in after),
               "after_over_before": round(statistics.median(per_round), 3),
               "spread": [round(min(per_round), 3), round(max(per_round), 3)]}
        rows.append(row)
        print(f"batch {batch:4d}  {variant:28s} before {row['before_img_steps_per_s']:7.0f}  after "
              f"{row['after_img_steps_per_s']:7.0f} img-steps/s   after/before x{row['after_over_before']:.3f} "
              f"(rounds {row['spread'][0]:.3f}-{row['spread'][1]:.3f})")
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "sampler_before_after", "machine": machine,
                                        "settings": {k: str(v) if isinstance(v, Path) else v
                                                     for k, v in vars(args).items()}, "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
