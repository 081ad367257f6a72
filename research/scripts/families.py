"""Runs of any recipes on one ruler: their quality curves against minutes of training, one table, one plot.

    python research/scripts/families.py "VAE=/work/runs/fa-vae@0.0478" "fast=/work/runs/fa-fast60@0.0734" \
        --minutes 60 --out research/results/fashion_anchors.json --plot docs/images/fashion_curves.png

Each run is ``LABEL=RUN_DIR@SECONDS_PER_STEP``: its steps become minutes at that speed (measured with
nothing else running, so runs that shared the machine keep their budget), counting the steps a divergence
rollback threw away and redid. The table gives each run's last evaluation within the budget and half a
minute (a later ``genframe eval`` of the same step with more samples wins) and the stability rule: after
the first quarter of the budget, no evaluation worse than twice the best so far. Unlike ``fast_recipe.py
report`` it compares no pair of recipes: every run stands on the one ruler, whatever its model family.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fast_recipe import at_budget, curve, print_curve, stable, training_n  # research/scripts/ is on sys.path

from genframe.util.atomic import atomic_write_text
from genframe.using.plot import plot_curves


def parse_run(text: str) -> tuple[str, str, float]:
    """``LABEL=RUN_DIR@SECONDS_PER_STEP`` as its three parts, or a clear exit."""
    label, _, rest = text.partition("=")
    run_dir, _, speed = rest.rpartition("@")
    try:
        s_per_step = float(speed)
    except ValueError:
        s_per_step = 0.0
    if not (label and run_dir and s_per_step > 0):
        raise SystemExit(f"Error: run {text!r} must look like LABEL=RUN_DIR@SECONDS_PER_STEP, e.g. vae=runs/vae@0.0478")
    if not (Path(run_dir) / "config.json").is_file():
        raise SystemExit(f"Error: {run_dir} is not a run directory (no config.json); give the folder a run wrote")
    return label, run_dir, s_per_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR@S_PER_STEP")
    p.add_argument("--minutes", type=float, default=60)
    p.add_argument("--out", required=True, help="JSON of every curve and the table")
    p.add_argument("--plot", required=True, help="PNG of fd against minutes: every run's own evaluations, those "
                   "past the budget too (a run that rollbacks made late shows where it ended)")
    args = p.parse_args()
    quarter, within_minutes, table, drawn = args.minutes / 4, args.minutes + 0.5, {}, {}  # half a minute's grace
    for label, run_dir, s_per_step in map(parse_run, args.runs):
        points = curve(run_dir, s_per_step)
        print_curve(f"{label}: {run_dir} at {s_per_step:.4f} s/step", points)
        n = training_n(run_dir)
        drawn[label] = [q for q in points if q["n"] == n] or points  # its own evaluations, past the budget too
        within = [q for q in drawn[label] if q["minutes"] <= within_minutes]
        table[label] = {"run": run_dir, "s_per_step": s_per_step, "points": points,
                        "at_budget": at_budget(points, within_minutes),
                        "stable_after_first_quarter": stable(within, quarter)}
    print(f"\n{'run':<28} {'step':>7} {'minutes':>8} {'n':>6} {'fd':>8} {'conf':>6} {'coverage':>8}  stable")
    for label, row in table.items():
        b = row["at_budget"] or {"step": 0, "minutes": 0.0, "n": 0, "fd": float("nan"), "confidence": 0, "coverage": 0}
        print(f"{label:<28} {b['step']:7d} {b['minutes']:8.1f} {b['n']:6d} {b['fd']:8.3f} {b['confidence']:6.3f} "
              f"{b['coverage']:8.3f}  {row['stable_after_first_quarter']}")
    atomic_write_text(args.out, json.dumps({"minutes": args.minutes, "runs": table}, indent=2) + "\n")
    print(f"wrote {args.out}")
    plot = plot_curves({label: [(q["minutes"], q["fd"]) for q in points] for label, points in drawn.items()},
                       args.plot, xlabel="minutes", log_y=True)
    print(f"wrote {plot}")


if __name__ == "__main__":
    main()
