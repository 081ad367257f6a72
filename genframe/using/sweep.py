"""A grid of settings, run point by point: ``genframe sweep RECIPE --grid key=a,b --grid seed=0,1,2``.

Every point of the grid (the product of the ``--grid`` values, in the order given) is one run, in a
directory of ``--runs-dir`` named by its settings (``trainer.lr=0.0001__seed=0``). Each point runs as
its own ``genframe run`` process, so one that fails or is killed leaves the others alone, and with
``--parallel N`` N points run at once with the machine's threads split between them. Run the same
sweep again and it skips the points whose ``status.json`` says they are done and resumes the ones
that were interrupted. At the end it writes ``summary.csv`` and ``summary.md`` (each point's
settings, status, steps, minutes, and each metric's final and best value, best meaning lower or
higher as the metric declares) and one overlay plot of a chosen metric.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genframe.contracts.errors import ConfigError, RunError
from genframe.util.atomic import atomic_write_text
from genframe.util.openmp import usable_cores
from genframe.util.text import one_line

DONE = ("completed", "finished early")
# Which way is better, for the metrics the core measures; a recipe declares its own (Recipe.metric_goals).
# (No goal for "loss": what a good loss is depends on the family; a contrastive-divergence loss is best near 0.
# None for "density" either: about 1 is right, above it the samples bunch where the data is dense.)
CORE_GOALS = {f"eval/{prefix}{name}": goal for prefix in ("", "trained/")  # trained/: a callback's weights aside
              for name, goal in (("fd", "min"), ("kid", "min"), ("precision", "max"), ("recall", "max"),
                                 ("knn_coverage", "max"), ("confidence", "max"),
                                 ("confident", "max"), ("class_spread", "max"))}


@dataclass
class Point:
    settings: dict[str, str]  # key -> the value as written on the command line
    run_dir: Path
    status: str = "pending"
    returncode: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.settings.items()]


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``key=a,b,c`` (or ``key=[v1, v2]``, a JSON list whose items may be lists) into key -> values."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key or not text:
            raise ConfigError(f"--grid {item!r} must look like section.key=value1,value2 (or key=[json, list])")
        if key in grid:
            raise ConfigError(f"--grid names {key} twice; give all its values in one --grid")
        if text.lstrip().startswith("["):
            try:
                values = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--grid {item!r}: not a JSON list ({exc.msg})") from None
            if not isinstance(values, list) or not values:
                raise ConfigError(f"--grid {item!r}: give a non-empty list of values")
            grid[key] = [json.dumps(v, separators=(",", ":")) if not isinstance(v, str) else v for v in values]
        else:
            grid[key] = [v.strip() for v in text.split(",")]
            if "" in grid[key]:
                raise ConfigError(f"--grid {item!r}: an empty value; separate values with single commas")
    return grid


def point_name(settings: dict[str, str]) -> str:
    """A directory name that says the point's settings (safe on every file system genframe runs on)."""
    name = "__".join(f"{key}={value}" for key, value in settings.items())
    return "".join(c if c.isalnum() or c in "._=,-[]" else "-" for c in name)


def plan(grid: dict[str, list[str]], runs_dir: Path) -> list[Point]:
    points, seen = [], {}
    for values in itertools.product(*grid.values()):
        settings = dict(zip(grid, values))
        name = point_name(settings)
        if name in seen:  # two values that differ only in characters a directory name cannot hold
            raise ConfigError(f"--grid points {seen[name]} and {settings} would share the run directory {name}; "
                              "write their values so that they differ in letters, digits or ._=,-[]")
        seen[name] = settings
        points.append(Point(settings, runs_dir / name))
    return points


def threads_per_point(parallel: int, environ: dict[str, str] | None = None) -> int:
    """The threads each of ``parallel`` concurrent points gets: the CPUs this process may use (or the
    ``OMP_NUM_THREADS`` the user set), shared out, at least one."""
    environ = os.environ if environ is None else environ
    try:
        available = int(environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        available = 0
    if available < 1:
        available = usable_cores()
    return max(1, available // parallel)


def _command(recipe: str, config: str | None, overrides: list[str], point: Point) -> list[str]:
    from genframe.training.rundir import holds_checkpoint

    sets = [a for o in [*overrides, *point.overrides] for a in ("--set", o)]
    command = [sys.executable, "-m", "genframe", "run", recipe, "--quiet"]
    if holds_checkpoint(point.run_dir):  # interrupted, failed or killed: go on from its last checkpoint
        return [*command, "--resume", str(point.run_dir), *sets]
    return [*command, *(["--config", config] if config else []), *sets, "--run-dir", str(point.run_dir)]


def run_sweep(recipe: str, grid: dict[str, list[str]], runs_dir: str | Path, config: str | None = None,
              overrides: tuple[str, ...] = (), parallel: int = 1, metric: str | None = None,
              say: Callable[[str], None] = print) -> list[Point]:
    """Run every point not yet done, ``parallel`` at a time; write the summary and the overlay plot."""
    from genframe.training.rundir import holds_checkpoint, read_status

    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot make --runs-dir {runs_dir} ({exc.strerror or exc}); give a writable place") from None
    points = plan(grid, runs_dir)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_point(parallel))}  # each point its share of the machine

    def run_point(point: Point) -> None:
        status = (read_status(point.run_dir) or {}).get("status")
        if status in DONE:
            point.status = f"{status} (skipped)"
            return
        say(f"sweep: {point.run_dir.name}: {'resuming' if holds_checkpoint(point.run_dir) else 'starting'}")
        log = point.run_dir.parent / f".{point.run_dir.name}.log"  # appended to: an earlier try's errors stay
        with open(log, "a", encoding="utf-8") as output:
            start = output.tell()
            process = subprocess.run(_command(recipe, config, list(overrides), point), env=env, stdout=output,
                                     stderr=subprocess.STDOUT, check=False)
        point.returncode = process.returncode
        point.status = (read_status(point.run_dir) or {}).get("status", "failed")
        with open(log, encoding="utf-8") as output:
            output.seek(start)
            errors = [line for line in output.read().splitlines() if line.startswith("Error: ")]
        say(f"sweep: {point.run_dir.name}: {point.status}" + (f" ({errors[-1][7:]})" if errors else ""))

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(run_point, points))
    goals = {**CORE_GOALS, **_recipe_goals(recipe)}
    for point in points:
        point.summary = summarise(point.run_dir, goals)
    metric = metric or ("eval/fd" if any("eval/fd final" in p.summary for p in points) else "loss")
    write_summary(points, runs_dir, goals, metric)
    _overlay(points, runs_dir, metric)
    return points


def _recipe_goals(recipe: str) -> dict[str, str]:
    from genframe.plugins.recipes import get_recipe

    return dict(getattr(get_recipe(recipe), "metric_goals", lambda: {})())


def summarise(run_dir: Path, goals: dict[str, str]) -> dict[str, Any]:
    """A point's steps, minutes and each metric's final value and (where its goal is known) best value."""
    from genframe.training.rundir import read_status
    from genframe.using.plot import read_metrics

    try:
        rows = read_metrics(run_dir)
    except Exception:  # noqa: BLE001 - a point that never logged: nothing to summarise
        return {}
    values: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in ("step", "epoch", "time") and isinstance(value, (int, float)):
                values.setdefault(key, []).append(float(value))
    summary: dict[str, Any] = {"step": max((row.get("step", 0) for row in rows), default=0)}
    status = read_status(run_dir) or {}
    summary["step"] = status.get("step", summary["step"])
    if "train_minutes" in status:
        summary["minutes"] = status["train_minutes"]
    for key, series in sorted(values.items()):
        summary[f"{key} final"] = series[-1]
        if key in goals:
            summary[f"{key} best"] = min(series) if goals[key] == "min" else max(series)
    return summary


def write_summary(points: list[Point], runs_dir: Path, goals: dict[str, str], metric: str = "loss") -> None:
    """summary.csv with every metric; summary.md with those that have a goal (final and best) and ``metric``."""
    keys = list(points[0].settings) if points else []
    columns = sorted({column for point in points for column in point.summary if column not in ("step", "minutes")},
                     key=_eval_first)
    header = [*keys, "status", "step", "minutes", *columns]
    rows = [[*p.settings.values(), p.status, p.summary.get("step", ""), _number(p.summary.get("minutes")),
             *(_number(p.summary.get(c)) for c in columns)] for p in points]
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    atomic_write_text(runs_dir / "summary.csv", buffer.getvalue())
    # the table people read: one column per metric with a declared goal (a callback's eval/trained/ diagnostics
    # aside) and the plotted one, "final (best B)" where the best differs; the CSV keeps every number
    names = sorted({c.rsplit(" ", 1)[0] for c in columns if c.endswith(" final")}, key=_eval_first)
    names = [n for n in names if (n in goals and not n.startswith("eval/trained/")) or n == metric]
    header_md = [*keys, "status", "step", "minutes", *names]
    lines = ["| " + " | ".join(header_md) + " |", "|" + "---|" * len(header_md)]
    for point, row in zip(points, rows):
        cells = [_final_and_best(point.summary, name) for name in names]
        lines.append("| " + " | ".join([*map(str, row[:len(keys) + 3]), *cells]) + " |")
    best = ", ".join(f"{key}: {'lower' if goal == 'min' else 'higher'}" for key, goal in sorted(goals.items())
                     if key in names)
    note = f"\nfinal value (best value where it differs; best means, per metric: {best})\n" if best else "\n"
    atomic_write_text(runs_dir / "summary.md", "\n".join(lines) + "\n" + note)


def _eval_first(name: str) -> tuple[bool, str]:
    """Sort key: the evaluation's metrics first, then the rest, each alphabetically."""
    return not name.startswith("eval/"), name


def _final_and_best(summary: dict[str, Any], name: str) -> str:
    final, best = summary.get(f"{name} final"), summary.get(f"{name} best")
    return _number(final) if best is None or best == final else f"{_number(final)} (best {_number(best)})"


def _number(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _overlay(points: list[Point], runs_dir: Path, metric: str) -> None:
    """One plot of ``metric`` across the points that logged."""
    logged = [p for p in points if p.summary]
    if not logged:
        return
    try:
        from genframe.using.plot import plot_runs

        plot_runs([p.run_dir for p in logged], runs_dir / "summary.png", [metric])
    except Exception as exc:  # noqa: BLE001 - matplotlib missing or no such metric: the tables stand alone
        print(f"warning: no overlay plot ({one_line(exc)[:160]})", file=sys.stderr)
