"""Quality versus training wall-clock for a recipe: the sample-quality metric after each epoch, per seed.

    python benchmarks/quality.py --config examples/ebm_mnist.toml --epochs 3 --seeds 0 1

Trains each seed from scratch with ``callbacks.evaluation.every_epochs=1`` (the evaluation's own time is not counted as
training time), then prints a table of (epoch, training minutes, fd, confidence, confident share,
class spread) per seed with the mean and spread across seeds, and writes it all as JSON. Figures depend
on the machine; quote them with the machine and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

import genframe
from genframe.util.metric_names import renamed_metrics
from genframe.util.atomic import atomic_write_text
from sgld_throughput import cpu_name  # run as a script, benchmarks/ is on sys.path

METRICS = ("fd", "confidence", "confident", "class_spread")


def run_seed(recipe: str, config: str, seed: int, epochs: int, n: int, steps: int | None, extra: list[str],
             run_dir: Path) -> list[dict]:
    overrides = [f"seed={seed}", f"trainer.epochs={epochs}", "callbacks.evaluation.every_epochs=1",
                 f"callbacks.evaluation.n={n}", 'logging.loggers=["jsonl"]', "logging.chain_n=0", *extra]
    if steps is not None:
        overrides.append(f"callbacks.evaluation.steps={steps}")
    genframe.train(recipe, config, overrides, run_dir=run_dir, quiet=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{"epoch": i + 1, "train_minutes": round(r["eval/train_minutes"], 2),
             **{m: round(r[f"eval/{m}"], 4) for m in METRICS}}
            for i, r in enumerate(r for r in rows if "eval/fd" in r)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="ebm")
    parser.add_argument("--config", default="examples/ebm_mnist.toml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n", type=int, default=1000, help="samples per evaluation")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps per evaluation (default: recipe's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override")
    parser.add_argument("--out", default="benchmarks/results/quality.json")
    parser.add_argument("--runs", default=None, help="keep run directories here (default: a temporary folder)")
    parser.add_argument("--combine", nargs="+", help="only merge the per-seed results of earlier JSON outputs")
    args = parser.parse_args()

    started = time.time()
    per_seed: dict = {}
    if args.combine:  # seeds run as separate processes (e.g. side by side, one core each): merge their JSON
        for path in args.combine:
            per_seed.update({seed: [renamed_metrics(row, path) for row in rows]  # older results: "coverage"
                             for seed, rows in json.loads(Path(path).read_text())["per_seed"].items()})
        args.seeds = sorted(int(seed) for seed in per_seed)
    else:
        base = Path(args.runs) if args.runs else Path(tempfile.mkdtemp(prefix="genframe-quality-"))
        for seed in args.seeds:
            per_seed[seed] = run_seed(args.recipe, args.config, seed, args.epochs, args.n, args.steps,
                                      args.overrides, base / f"seed{seed}")
            print(f"seed {seed} done: {per_seed[seed]}", flush=True)

    summary = []
    threads = torch.get_num_threads()
    if args.combine:  # the runs' own thread count, not this merging process's
        threads = json.loads(Path(args.combine[0]).read_text())["machine"].get("torch_threads", threads)
    print(f"\n{args.recipe} ({args.config}), {args.n} samples per evaluation, {threads} torch threads, "
          f"{os.cpu_count()} cores: {cpu_name()}")
    print(f"{'epoch':>5} {'train min':>9} {'fd mean':>9} {'fd min-max':>17} {'conf':>6} {'conf>0.9':>8} {'spread':>8}")
    for epoch in range(1, args.epochs + 1):
        rows = [r for seed_rows in per_seed.values() for r in seed_rows if r["epoch"] == epoch]
        if not rows:
            continue
        mean = {m: statistics.fmean(r[m] for r in rows) for m in (*METRICS, "train_minutes")}
        fds = [r["fd"] for r in rows]
        summary.append({"epoch": epoch, **{k: round(v, 4) for k, v in mean.items()}, "fd_min": min(fds),
                        "fd_max": max(fds)})
        print(f"{epoch:5d} {mean['train_minutes']:9.1f} {mean['fd']:9.1f} {min(fds):8.1f}-{max(fds):<8.1f} "
              f"{mean['confidence']:6.3f} {mean['confident']:8.3f} {mean['class_spread']:8.3f}")
    result = {"recipe": args.recipe, "config": args.config, "seeds": args.seeds, "epochs": args.epochs, "n": args.n,
              "steps": args.steps, "overrides": args.overrides, "machine": {"cpu": cpu_name(), "cores": os.cpu_count(),
              "torch_threads": threads, "torch": torch.__version__}, "per_seed": per_seed, "summary": summary,
              "wall_minutes": round((time.time() - started) / 60, 1)}
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
