"""Training curves from ``RUN_DIR/metrics.jsonl``, drawn with matplotlib: one or several runs overlaid.

One panel per metric; a validation metric ``val/X`` shares the panel of ``X`` (dashed). Fréchet
distances (``eval/fd``) are drawn on a log axis: a curve falling from 200 to 2 reads as clearly as one
from 20 to 2. The picture's format follows the file's suffix (``.png``, ``.svg`` or ``.pdf``); it is
written atomically. matplotlib (the ``plot`` extra, or ``pip install matplotlib``) is imported only
here, when a picture is drawn; reading metrics needs nothing beyond the standard library.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

from genframe.contracts.errors import RunError
from genframe.loggers.jsonl import METRICS_NAME
from genframe.util.atomic import atomic_write_bytes
from genframe.util.metric_names import current_name, renamed_metrics

META_KEYS = {"step", "epoch", "time", "eval/n"}  # eval/n: the sample count behind an fd, not a curve
FORMATS = ("png", "svg", "pdf")
PANEL_INCHES = (5.0, 3.0)
DPI = 100


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        raise RunError(f"{path} does not exist; give a run directory written by genframe with the jsonl logger")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(renamed_metrics(json.loads(line), str(path)))  # a run of genframe 0.1 logged "coverage"
        except json.JSONDecodeError:  # a line being written right now
            continue
    return rows


def series(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """metric -> [(step, value)], finite numbers only."""
    out: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in META_KEYS and isinstance(value, (int, float)) and math.isfinite(value):
                out.setdefault(key, []).append((row["step"], float(value)))
    return out


def panels(names: list[str]) -> list[list[str]]:
    """Group ``X`` with ``val/X``; keep the order metrics first appear in."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.removeprefix("val/"), []).append(name)
    return list(groups.values())


def wants_log_axis(name: str, points: list[tuple[float, float]]) -> bool:
    """Fréchet distances span decades over a run; everything else keeps a linear axis."""
    return name.removeprefix("val/").split("/")[-1] == "fd" and all(y > 0 for _, y in points)


def new_figure(rows: int, cols: int) -> Any:
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no display, safe in a notebook
    except ImportError:
        raise RunError("drawing curves needs matplotlib, which is not installed: pip install matplotlib") from None
    return Figure(figsize=(PANEL_INCHES[0] * cols, PANEL_INCHES[1] * rows), dpi=DPI, layout="constrained")


def picture_format(out: Path) -> str:
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise RunError(f"cannot draw {out}: give a file ending in {', '.join('.' + f for f in FORMATS)}")
    return fmt


def save_figure(figure: Any, out: str | Path) -> Path:
    out = Path(out)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=picture_format(out))
    return atomic_write_bytes(out, buffer.getvalue())


def run_labels(run_dirs: list[Path]) -> list[str]:
    """Each run's directory name, or its whole path where two runs share a name."""
    names = [path.name or str(path) for path in run_dirs]
    return [str(path) if names.count(name) > 1 else name for path, name in zip(run_dirs, names)]


def plot_runs(run_dirs: list[str | Path], out: str | Path | None = None, metrics: list[str] | None = None) -> Path:
    """Draw the curves of one or more runs to ``out``: each metric in its own panel, each run in its own
    colour. Default ``out``: ``RUN_DIR/curves.png`` for one run, ``curves.png`` here for several."""
    paths = [Path(run_dir) for run_dir in run_dirs]
    if not paths:
        raise RunError("give at least one run directory to plot")
    out = Path(out) if out is not None else (paths[0] / "curves.png" if len(paths) == 1 else Path("curves.png"))
    picture_format(out)  # a bad suffix is an error before any drawing
    return save_figure(runs_figure(paths, metrics), out)


def runs_figure(paths: list[Path], metrics: list[str] | None = None) -> Any:
    """The matplotlib Figure ``plot_runs`` saves (a notebook can show it as it is)."""
    data = {path: series(read_metrics(path)) for path in paths}
    known = list(dict.fromkeys(name for curves in data.values() for name in curves))
    if metrics:
        metrics = [current_name(m) for m in metrics]  # eval/coverage, as genframe 0.1 named it: eval/class_spread
        unknown = [m for m in metrics if m not in known]
        if unknown:
            where = ", ".join(str(p) for p in paths)
            raise RunError(f"no metric {', '.join(unknown)} in {where}; there is: {', '.join(known) or 'none yet'}")
        known = [name for name in known if name in metrics or name.removeprefix("val/") in metrics]
    if not known:
        raise RunError(f"{paths[0] / METRICS_NAME} has no metrics yet; plot again once the run has logged")
    groups = panels(known)
    cols = 2 if len(groups) > 1 else 1
    rows = math.ceil(len(groups) / cols)
    figure = new_figure(rows, cols)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    colours = [f"C{index % 10}" for index in range(len(paths))]
    for ax, names in zip(axes, groups):
        for path, label, colour in zip(paths, run_labels(paths), colours):
            for name in names:
                points = data[path].get(name, [])
                if not points:
                    continue
                steps, values = zip(*sorted(points))  # genframe eval appends rows for earlier checkpoints
                validation = name.startswith("val/")
                ax.plot(steps, values, color=colour, linestyle="--" if validation else "-",
                        marker="o" if len(points) < 20 else None, markersize=3,
                        label=name if len(paths) == 1 else label + (" (val)" if validation else ""))
        every = [p for path in paths for name in names for p in data[path].get(name, [])]
        if all(wants_log_axis(name, every) for name in names):
            ax.set_yscale("log")
        ax.set_title(names[0].removeprefix("val/"))
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        if len(paths) > 1 or len(names) > 1:
            ax.legend(fontsize="small")
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    return figure


def plot_curves(curves: dict[str, list[tuple[float, float]]], out: str | Path, xlabel: str = "step",
                log_y: bool = False, ylabel: str = "") -> Path:
    """One panel with a line per named curve of (x, y) points, e.g. two runs' quality against minutes;
    ``log_y`` draws the values on a log axis (they must all be positive)."""
    if not any(curves.values()):
        raise RunError("nothing to plot: every curve is empty")
    if log_y and any(y <= 0 for points in curves.values() for _, y in points):
        raise RunError("a log axis needs positive values; plot without log_y")
    figure = new_figure(1, 1)
    ax = figure.subplots()
    for name, points in curves.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return save_figure(figure, out)
