"""The fast EBM recipe against the reference recipe: sample quality per minute of CPU training.

    python research/scripts/fast_recipe.py speed                      # s/step of each recipe here (~3 minutes)
    python research/scripts/fast_recipe.py train --minutes 60         # both recipes, N minutes' worth of steps each
    python research/scripts/fast_recipe.py report RUN_REF RUN_FAST [RUN_FAST ...]   # table, stability, plot
    python research/scripts/fast_recipe.py report research/results/fast_recipe.json:reference RUN_FAST  # earlier curve
    python research/scripts/fast_recipe.py seeds RUN_OR_CHECKPOINT [...] --seeds 1 2 3 4 5   # one model, many draws

``speed`` runs each recipe for a few hundred steps in this process, alternating in rounds, with all
the machine's threads, and keeps the median seconds per step (nothing else may run meanwhile).
``train`` gives each recipe the number of steps that fits in ``--minutes`` at that speed, with an
evaluation (the recipe's own ``callbacks.evaluation.n`` and generation settings) every twelfth of the
budget, and evaluates the reference's last step again with the fast recipe's sample count; the steps, not the
clock, end the run, so both recipes get the same compute even if the two runs share the machine
(``--threads 1`` runs them one core each, side by side, from two shells).
``report`` converts steps to minutes at the measured speed (steps that a divergence rollback threw
away and redid count too), prints the curves, checks each fast run's
stability (after the first quarter of the budget, no evaluation worse than twice the best so far), compares
the figures at the budget only between evaluations of the same sample count (an fd depends on it)
and draws all curves on one plot; give several fast runs (seeds) to judge the recipe, not one run. ``seeds``
evaluates each given model with several generation seeds: the spread is the measurement's own noise
(an fd from 1000 samples of one fixed model varies by tens of percent from draw to draw), which one
evaluation per point of a curve cannot show. Figures depend on the machine; quote them with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

from genframe.util.openmp import spin_less

# A script in research/scripts: the throughput benchmarks' helpers (benchmarks/sgld_throughput.py) are imported
# from their folder, whatever the working directory.
BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

spin_less()  # as the genframe command does, before torch loads
import torch  # noqa: E402

import genframe  # noqa: E402
from genframe.util.atomic import atomic_write_text  # noqa: E402
from genframe.callbacks.evaluation import EvaluationSettings  # noqa: E402
from genframe.using.plot import plot_curves, read_metrics  # noqa: E402
from sgld_throughput import cpu_name  # noqa: E402 - from benchmarks/, put on sys.path above

REPO = Path(__file__).resolve().parents[2]
RECIPES = {"reference": REPO / "examples" / "ebm_mnist.toml", "fast": REPO / "examples" / "ebm_mnist_fast.toml"}
RESULTS = REPO / "research" / "results"
SPEED_JSON = RESULTS / "fast_recipe_speed.json"
QUIET = ['logging.loggers=["jsonl"]', "logging.chain_n=0", "logging.sample_n=4", "logging.log_every=10"]
NO_EVAL = ["callbacks.evaluation.every_epochs=null", "callbacks.evaluation.every_steps=null"]


def seconds_per_step(config: Path | str, warmup: int, steps: int, run_dir: Path, recipe: str = "ebm",
                     overrides: Sequence[str] = ()) -> float:
    """Median of 10-step intervals after ``warmup`` steps, from the run's own log times."""
    genframe.train(recipe, config, [*overrides, f"trainer.max_steps={warmup + steps}", *NO_EVAL, *QUIET],
                   run_dir=run_dir, quiet=True)
    rows = [r for r in read_metrics(run_dir) if "loss" in r and r["step"] >= warmup]
    if len(rows) < 2:
        raise SystemExit(f"Error: {run_dir} logged fewer than two rows after the warm-up (one every 10 steps); "
                         f"time 20 steps or more")
    return statistics.median((b["time"] - a["time"]) / (b["step"] - a["step"]) for a, b in pairwise(rows))


def speed(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="genframe-speed-"))
    timings: dict[str, list[float]] = {name: [] for name in RECIPES}
    for round_index in range(args.rounds):
        for name, config in RECIPES.items():
            timings[name].append(seconds_per_step(config, 20, args.steps, base / f"{name}{round_index}"))
            print(f"round {round_index + 1}: {name} {timings[name][-1]:.4f} s/step", flush=True)
    result = {name: {"s_per_step": statistics.median(t), "rounds": t} for name, t in timings.items()}
    result["machine"] = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                         "torch": torch.__version__}
    for name in RECIPES:
        s = result[name]["s_per_step"]
        print(f"{name:>9}: {s:.4f} s/step, {60 / s:,.0f} steps per minute")
    atomic_write_text(args.out or SPEED_JSON, json.dumps(result, indent=2) + "\n")


def budget_steps(name: str, minutes: float) -> int:
    return int(minutes * 60 / json.loads(SPEED_JSON.read_text())[name]["s_per_step"])


def train(args: argparse.Namespace) -> None:
    for name in args.recipes:
        steps = budget_steps(name, args.minutes)
        every = max(1, steps // 12)
        run_dir = Path(args.runs) / name
        print(f"{name}: {steps} steps (= {args.minutes} minutes here), evaluating every {every}", flush=True)
        # Each recipe's own sample count (the reference's 1000-step generation makes 10000 samples a 20-minute job)...
        genframe.train("ebm", RECIPES[name], [f"trainer.max_steps={steps}", NO_EVAL[0],
                                              f"callbacks.evaluation.every_steps={every}", *QUIET[:2]],
                       run_dir=run_dir, quiet=True)
    if "reference" in args.recipes:  # ...and the reference's last step again with the fast recipe's n, to compare
        fast_n = evaluation_n(genframe.recipe_config("ebm", RECIPES["fast"]).callbacks.table("evaluation"))
        genframe.evaluate(Path(args.runs) / "reference", n=fast_n)


def curve(run_dir: str, s_per_step: float, weights: str = "sampling") -> list[dict]:
    """The run's evaluations; ``weights="trained"`` takes the trained weights' figures where the run
    also logged averaged ones (``eval/trained/*``, with the ``ema`` callback): the recipe without the average."""
    points, redone, own_n, finished_at = [], 0, training_n(run_dir), None
    for r in read_metrics(run_dir):
        if r.get("event") == "rollback":  # the steps it threw away were computed: they cost minutes too
            # the loop's wording: "... at step N (epoch E); rolled back", or "... at step N; rolled back" when a
            # callback asked between steps
            failed = re.search(r" at step (\d+)(?: \(epoch \d+\))?; rolled back", r["reason"])
            redone += int(failed.group(1)) - r["step"]
            # out_of_rollbacks = finish: the run ended here; its evaluation of this step is its result
            finished_at = r["step"] if " and finished there" in r["reason"] else None
        elif finished_at is not None and r.get("step", 0) > finished_at:
            finished_at = None  # resumed later: it trained on from there
        if "eval/fd" not in r:
            continue
        prefix = "eval/trained" if weights == "trained" and "eval/trained/fd" in r else "eval"
        # Records from before "eval/n" was logged: the training-time ones used the run's own n, and the
        # `genframe eval` ones in these runs used its default, 1000, which every such run also trained with.
        points.append({"step": r["step"], "n": int(r.get("eval/n", own_n)), "redone_steps": redone,
                       "minutes": round((r["step"] + redone) * s_per_step / 60, 2),
                       "own_clock_minutes": round(r.get("eval/train_minutes", float("nan")), 2),
                       "fd": r[f"{prefix}/fd"],  # unrounded: the stability rule is a sharp factor of 2
                       "confidence": round(r[f"{prefix}/confidence"], 3),
                       # the class spread, logged as "coverage" before genframe 0.2 (the stored results keep that key)
                       "coverage": round(r.get(f"{prefix}/class_spread", r.get(f"{prefix}/coverage")), 3)})
        if finished_at == r["step"]:
            points[-1]["final"] = True  # the run's final weights: its model at any later minute
    return points


def evaluation_n(table: dict) -> int:
    """The sample count of an evaluation settings table (its ``n``, else the default)."""
    return int(table.get("n", EvaluationSettings().n))


def training_n(run_dir: str) -> int:
    """The sample count of the run's own evaluations (``callbacks.evaluation.n``; ``eval.n`` in a run
    written before the callback core)."""
    config = json.loads((Path(run_dir) / "config.json").read_text())
    return evaluation_n(config.get("callbacks", {}).get("evaluation") or config.get("eval") or {})


def at_budget(points: list[dict], within: float, n: int | None = None) -> dict | None:
    """The latest evaluation within the budget (of ``n`` samples, if given); of two evaluations of the
    same step, the one with more samples, the more precise."""
    best = None
    for p in points:  # in the order logged: of two equal keys the later wins (a rollback re-evaluates a step)
        if p["minutes"] > within or (n is not None and p["n"] != n):
            continue
        if best is None or (p["minutes"], p["n"]) >= (best["minutes"], best["n"]):
            best = p
    return best


def tolerance(speed: dict, minutes: float) -> float:
    """How far from the budget a run's evaluation may sit and still count as at the budget: steps become
    minutes at the median of the speed rounds, which differ by a few percent (0.1284 to 0.1348 s/step
    here), so the minutes are known to that spread and no better; at least half a minute."""
    rounds = speed.get("rounds") or [speed["s_per_step"]]
    return max(0.5, minutes * (max(rounds) - min(rounds)) / speed["s_per_step"])


def stable(points: list[dict], after_minutes: float = 15.0) -> bool:
    """After ``after_minutes`` (the first quarter of the budget), no evaluation worse than twice the best so far."""
    best = float("inf")
    for point in points:
        if point["minutes"] > after_minutes and point["fd"] > 2 * best:
            return False
        best = min(best, point["fd"])
    return True


def run_label(run_dir: str) -> str:
    """The run's folder name and seed (from its own config), so the plot says which run is which."""
    seed = json.loads((Path(run_dir) / "config.json").read_text()).get("seed")
    return f"{Path(run_dir).name} (seed {seed})"


def print_curve(title: str, points: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'step':>7} {'minutes':>8} {'own clock':>9} {'n':>6} {'fd':>8} {'conf':>6} {'coverage':>8}")
    for p in points:
        print(f"{p['step']:7d} {p['minutes']:8.1f} {p['own_clock_minutes']:9.1f} {p['n']:6d} {p['fd']:8.1f} "
              f"{p['confidence']:6.3f} {p['coverage']:8.3f}")


def earlier_curve(source: str) -> tuple[str, list[dict], int] | None:
    """``RESULTS.json:NAME``, a curve that an earlier ``report`` wrote (its name as that file's ``curves``
    key: ``reference``, ``fast RUN (seed N)``), for a run whose folder is gone: its name, its points and
    its own sample count (its first evaluation's: the training-time ones come before any later
    ``genframe eval``). None when ``source`` is a run folder."""
    path, _, name = source.partition(":")
    if not (name and path.endswith(".json")):
        return None
    curves = json.loads(Path(path).read_text())["curves"]
    if name not in curves:
        raise SystemExit(f"{path} has no curve {name!r}; it has: {', '.join(map(repr, curves))}")
    return name, curves[name], curves[name][0]["n"]


def load_curves(args: argparse.Namespace, speeds: dict) -> tuple[dict, dict, dict]:
    """Each RUN's curve, seconds per step and own sample count, by name: the reference first."""
    curves, s_per_step, own_n = {}, {}, {}
    labels = args.labels or []
    for index, source in enumerate(args.runs):
        recipe = "reference" if index == 0 else "fast"
        earlier = earlier_curve(source)
        if earlier:  # already in minutes, at the speed the same speed file gave then
            name, points, n = earlier
            name = "reference" if index == 0 else "fast " + name.removeprefix("fast ")
        else:
            name = "reference" if index == 0 else f"fast {run_label(source)}"
            points, n = curve(source, speeds[recipe]["s_per_step"], args.weights), training_n(source)
        if 0 < index <= len(labels):
            name = f"fast {labels[index - 1]}"
        curves[name], s_per_step[name], own_n[name] = points, speeds[recipe]["s_per_step"], n
    return curves, s_per_step, own_n


def default_plot(out: str) -> Path:
    """The shipped picture for the shipped results file; for any other results file, a PNG beside it."""
    if Path(out).resolve() == (RESULTS / "fast_recipe.json").resolve():
        return REPO / "docs" / "images" / "fast_vs_reference.png"
    return Path(out).with_suffix(".png")


def report(args: argparse.Namespace) -> None:
    speeds = json.loads(SPEED_JSON.read_text())
    if args.fast_speed:  # fast runs of another setting than the recipe file's (bf16 chains, say), timed apart
        speeds["fast"] = {"s_per_step": statistics.median(args.fast_speed), "rounds": args.fast_speed}
    fast_runs = args.runs[1:]
    tol = {"reference": tolerance(speeds["reference"], args.minutes), "fast": tolerance(speeds["fast"], args.minutes)}
    print(f"at the budget: within {tol['reference']:.1f} minutes for the reference, {tol['fast']:.1f} for the fast "
          "runs (the spread of each recipe's speed rounds)")
    curves, s_per_step, own_n = load_curves(args, speeds)
    for name, points in curves.items():
        print_curve(f"{name} ({s_per_step[name]:.4f} s/step): minutes = steps x s/step", points)
    # A run's own curve (stability, plot) is its evaluations of its own n samples; at the budget, a later
    # `genframe eval` of the same step with more samples is the more precise figure (at_budget).
    own = {name: [p for p in points if p["n"] == own_n[name]] for name, points in curves.items()}
    summary: dict = {"minutes": args.minutes, "tolerance_minutes": tol, "fast": {}}
    quarter = args.minutes / 4  # the stability rule starts after the first quarter of the budget
    print()
    ref_within, within = args.minutes + tol["reference"], args.minutes + tol["fast"]
    for name, points in list(curves.items())[1:]:
        fast = at_budget(points, within)
        ref = at_budget(curves["reference"], ref_within, fast["n"]) if fast else None
        entry = {"fd_at_budget": fast["fd"] if fast else None, "n_at_budget": fast["n"] if fast else None,
                 "best_fd": min((p["fd"] for p in own[name] if p["minutes"] <= within), default=None),
                 "stable_after_first_quarter": stable([p for p in own[name] if p["minutes"] <= within], quarter)}
        # A run that finished early (out of rollbacks, callbacks.divergence_guard.out_of_rollbacks = finish) holds
        # its final weights from then on: their evaluation is its figure at the budget.
        reached = fast and (fast["minutes"] >= args.minutes - tol["fast"] or fast.get("final", False))
        if fast and fast.get("final"):
            entry["finished_early_at_minutes"] = fast["minutes"]
            print(f"{name} finished early at {fast['minutes']:.1f} minutes, on its last good checkpoint (step "
                  f"{fast['step']}): its final weights are its model at {args.minutes} minutes")
        if ref and ref["minutes"] >= args.minutes - tol["reference"] and reached:
            entry["reference_fd_at_budget"] = ref["fd"]
            entry["ratio"] = round(fast["fd"] / ref["fd"], 3)
            entry["no_worse_confidence_and_coverage"] = all(fast[k] >= ref[k] for k in ("confidence", "coverage"))
            print(f"at {args.minutes} minutes ({fast['n']} samples each): reference fd {ref['fd']:.1f}, {name} fd "
                  f"{fast['fd']:.1f} (ratio {entry['ratio']:.3f}); confidence {fast['confidence']:.3f} vs "
                  f"{ref['confidence']:.3f}, coverage {fast['coverage']:.3f} vs {ref['coverage']:.3f}; "
                  f"stable after the first quarter: {entry['stable_after_first_quarter']}")
        elif reached:
            print(f"{name}: the reference has no evaluation of {fast['n']} samples at {args.minutes} minutes to "
                  f"compare with; evaluate its checkpoint of that time: genframe eval {args.runs[0]} "
                  f"--n {fast['n']} (stable so far: {entry['stable_after_first_quarter']})")
        else:
            print(f"{name}: not both runs have an evaluation at {args.minutes} minutes (this one's last is at "
                  f"{fast['minutes'] if fast else 0:.1f}; stable so far: {entry['stable_after_first_quarter']})")
        summary["fast"][name] = entry
    ratios = [entry["ratio"] for entry in summary["fast"].values() if "ratio" in entry]
    if len(ratios) == len(fast_runs) > 1:  # a recipe is judged over seeds, not by its luckiest run
        summary["over_runs"] = {"mean_ratio": round(statistics.mean(ratios), 3), "worst_ratio": max(ratios),
                                "all_stable": all(e["stable_after_first_quarter"] for e in summary["fast"].values())}
        print(f"over {len(ratios)} fast runs: mean ratio {summary['over_runs']['mean_ratio']:.3f}, worst "
              f"{summary['over_runs']['worst_ratio']:.3f}; stable in every run: {summary['over_runs']['all_stable']}")
    atomic_write_text(args.out, json.dumps({"speed": speeds, "curves": curves, "summary": summary}, indent=2) + "\n")
    print(f"wrote {args.out}")
    labels = {name: f"{name.removeprefix('fast ')}, n={own_n[name]}" for name in own}  # short: fewer legend rows
    plot = plot_curves({labels[name]: [(p["minutes"], p["fd"]) for p in points] for name, points in own.items()},
                       args.plot or default_plot(args.out), xlabel="minutes", log_y=True)
    print(f"wrote {plot}")


def seeds(args: argparse.Namespace) -> None:
    """Each model evaluated with each generation seed: mean, spread and every draw."""
    import genframe

    results = {}
    for path in args.models:
        # the model's own recipe's sample count
        n = args.n or evaluation_n(genframe.load(path, device="cpu").config.callbacks.table("evaluation"))
        draws = [genframe.evaluate(path, n=n, seed=seed, log=False) for seed in args.seeds]
        fds = [d["samples"]["fd"] for d in draws]
        results[path] = {
            "step": draws[0]["step"], "n": n, "seeds": args.seeds, "fd": [round(f, 2) for f in fds],
            "fd_mean": round(statistics.mean(fds), 2), "fd_sd": round(statistics.stdev(fds), 2) if len(fds) > 1 else 0.0,
            **{f"{k}_mean": round(statistics.mean(d["samples"][k] for d in draws), 3)
               for k in ("confidence", "class_spread", "kid", "precision", "recall")}}
        r = results[path]
        print(f"{path} (step {r['step']}): fd {r['fd_mean']:.1f} +- {r['fd_sd']:.1f} over seeds {args.seeds} "
              f"({', '.join(f'{f:.1f}' for f in r['fd'])}); confidence {r['confidence_mean']:.3f}, "
              f"class spread {r['class_spread_mean']:.3f}, KID {r['kid_mean']:.3g}, precision "
              f"{r['precision_mean']:.3f}, recall {r['recall_mean']:.3f}", flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("speed")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--out", default=None)
    p = commands.add_parser("train")
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--runs", default="runs/fast_recipe")
    p.add_argument("--threads", type=int, default=None)
    p = commands.add_parser("report")
    p.add_argument("runs", nargs="+", metavar="RUN", help="the reference run, then one or more fast runs; each a "
                   "run folder or RESULTS.json:NAME, a curve an earlier report wrote (e.g. "
                   "research/results/fast_recipe.json:reference)")
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--labels", nargs="+", metavar="LABEL",
                   help="names for the fast runs in the table and plot, in order (default: folder and seed)")
    p.add_argument("--fast-speed", nargs="+", type=float, metavar="S",
                   help="seconds per step of the fast runs given as folders, one per timing round (default: the "
                        "speed file's, measured for examples/ebm_mnist_fast.toml)")
    p.add_argument("--weights", choices=["sampling", "trained"], default="sampling",
                   help="with the ema callback: the averaged weights' figures (the default) or the trained ones'")
    p.add_argument("--plot", default=None, help="PNG to draw (default: docs/images/fast_vs_reference.png with the "
                   "default --out, else beside --out: a study of its own never overwrites the shipped picture)")
    p.add_argument("--out", default=str(RESULTS / "fast_recipe.json"))
    p = commands.add_parser("seeds")
    p.add_argument("models", nargs="+", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    p.add_argument("--n", type=int, default=None,
                   help="samples per draw (default: the model's own callbacks.evaluation.n)")
    p.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.command == "report" and len(args.runs) < 2:
        parser.error("report needs the reference run and at least one fast run")
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    {"speed": speed, "train": train, "report": report, "seeds": seeds}[args.command](args)


if __name__ == "__main__":
    main()
