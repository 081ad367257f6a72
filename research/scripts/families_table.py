"""The families table and its figure from a run queue's results: each family on each dataset at each budget.

    python research/scripts/families_table.py research/results/families.json --plot docs/images/families.png
    python research/scripts/families_table.py LANE1.json LANE2.json   # queues run side by side, one file each

Reads ``run_queue.py``'s output (one file per queue, where several queues shared the machine) for ``research/scripts/families.toml`` (runs named FAMILY-DATA-MINUTESmin, with
``-seedK`` where a family ran several seeds), prints a Markdown table (the mean over seeds, and each metric's
spread over them where there are several) and draws fd against minutes, one line per family and dataset, on
a log axis. A budget whose runs are not all done shows what is done and says how many seeds it holds.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from genframe.using.plot import plot_curves

NAME = re.compile(r"^(?P<family>[a-z_]+)-(?P<data>[a-z_]+)-(?P<minutes>\d+(?:\.\d+)?)min(?:-seed(?P<seed>\d+))?$")
SHOWN = ("fd", "kid", "precision", "recall", "confidence")
# What a family spends per sample where its evaluation records no ODE function evaluations (``nfe`` is None):
# the recipes' own settings, named so the NFE column compares like with like.
GENERATION_COST = {"ebm": "30 Langevin steps", "vae": "1 decoder pass"}


def grouped(results: dict) -> dict[tuple[str, str, float], list[dict]]:
    """(family, data, minutes) -> the finished runs' results, in seed order."""
    groups: dict[tuple[str, str, float], list[dict]] = defaultdict(list)
    for name, result in sorted(results.items()):
        match = NAME.match(name)
        if match:
            groups[(match["family"], match["data"], float(match["minutes"]))].append(result)
    return dict(groups)


def cell(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(groups: dict) -> str:
    rows = ["| family | data | minutes | seeds | steps | fd | KID (x1000) | precision | recall | confidence | NFE | "
            "s per 1000 samples (shared machine) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    # MNIST first, as the recipes were built for it; then family by family, budget by budget
    for (family, data, minutes), runs in sorted(groups.items(), key=lambda kv: (kv[0][1] != "mnist",) + kv[0]):
        evals = [r["eval"] for r in runs]
        nfe = evals[0].get("nfe")
        nfe = GENERATION_COST.get(family, "") if nfe is None else nfe
        speed = [e["seconds_per_1000"] for e in evals if e.get("seconds_per_1000")]
        rows.append(f"| {family} | {data} | {minutes:g} | {len(runs)} | {runs[0]['steps']} | "
                    + " | ".join(cell([e[k] for e in evals], 2 if k in ("fd", "kid") else 3) for k in SHOWN)
                    + f" | {nfe} | {cell(speed, 1) if speed else ''} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="run_queue.py's JSON for the families plan, one per queue")
    p.add_argument("--plot", default=None, help="PNG of fd against minutes, a line per family and dataset")
    args = p.parse_args()
    results: dict = {}
    for path in args.results:
        more = json.loads(Path(path).read_text())
        twice = sorted(set(results) & set(more))
        if twice:
            raise SystemExit(f"Error: {path} repeats runs another file holds ({', '.join(twice)}); give each run's "
                             f"results once")
        results |= more
    groups = grouped(results)
    if not groups:
        raise SystemExit(f"Error: {' '.join(args.results)} holds no run named FAMILY-DATA-MINUTESmin[-seedK]; give the "
                         f"results of research/scripts/families.toml")
    print(table(groups))
    if args.plot:
        curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for (family, data, minutes), runs in sorted(groups.items()):
            curves[f"{family} {data}"].append((minutes, statistics.fmean(r["eval"]["fd"] for r in runs)))
        drawn = plot_curves(dict(curves), args.plot, xlabel="minutes of training on 2 cores",
                            ylabel="own fd at n = 10000 (log scale)", log_y=True)
        print(f"wrote {drawn}")


if __name__ == "__main__":
    main()
