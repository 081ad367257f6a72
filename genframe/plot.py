"""Training curves from ``RUN_DIR/metrics.jsonl`` drawn to a PNG with Pillow (no plotting dependency).

One panel per metric; a validation metric ``val/X`` is drawn in the panel of ``X``.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from genframe.atomic import atomic_write_bytes
from genframe.errors import RunError
from genframe.loggers.jsonl import METRICS_NAME

META_KEYS = {"step", "epoch", "time", "eval/n"}  # eval/n: the sample count behind an fd, not a curve
PANEL_W, PANEL_H, MARGIN_L, MARGIN_B, MARGIN_T = 440, 250, 64, 28, 26
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14)]


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        raise RunError(f"{path} does not exist; give a run directory written by genframe with the jsonl logger")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
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


def _legend_rows(draw: ImageDraw.ImageDraw, names: list[str], font, width: float) -> list[list[tuple[int, str]]]:
    """The curve names laid out left to right, wrapped into as many rows as the panel's width needs."""
    rows: list[list[tuple[int, str]]] = [[]]
    used = 0.0
    for index, name in enumerate(names):
        needed = draw.textlength(name, font=font) + 14
        if rows[-1] and used + needed > width:
            rows.append([])
            used = 0.0
        rows[-1].append((index, name))
        used += needed
    return rows


def _draw_panel(draw: ImageDraw.ImageDraw, box: tuple[int, int], names: list[str], data, font,
                xlabel: str = "step", size: tuple[int, int] = (PANEL_W, PANEL_H), log_y: bool = False) -> None:
    left, top = box
    x1, y1 = left + size[0] - 12, top + size[1] - MARGIN_B
    x0 = left + MARGIN_L
    legend = _legend_rows(draw, names, font, x1 - x0 - 4)
    y0 = top + MARGIN_T + 12 * (len(legend) - 1)
    points = [p for name in names for p in data[name]]
    steps = [p[0] for p in points]
    scale = math.log10 if log_y else float  # a log axis shows a curve falling from 200 to 2 as clearly as from 20
    values = [scale(p[1]) for p in points]
    smin, smax = min(steps), max(steps)
    vmin, vmax = min(values), max(values)
    if vmax - vmin < 1e-12:
        vmin, vmax = vmin - 1, vmax + 1
    sx = (x1 - x0) / max(smax - smin, 1)
    sy = (y1 - y0) / (vmax - vmin)
    draw.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
    for frac in (0.0, 0.5, 1.0):
        value = vmin + frac * (vmax - vmin)
        y = y1 - frac * (y1 - y0)
        draw.line([x0 - 4, y, x0, y], fill=(120, 120, 120))
        draw.text((left + 4, y - 6), f"{10 ** value if log_y else value:.3g}", fill=(0, 0, 0), font=font)
    axis = f"{xlabel} {smin:.0f}" + (", log scale" if log_y else "")
    draw.text((x0, y1 + 6), axis, fill=(0, 0, 0), font=font)
    draw.text((x1 - 70, y1 + 6), f"{smax:.0f}", fill=(0, 0, 0), font=font)
    for index, name in enumerate(names):
        color = COLORS[index % len(COLORS)]
        line = [(x0 + (s - smin) * sx, y1 - (scale(v) - vmin) * sy) for s, v in data[name]]
        if len(line) == 1:
            x, y = line[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)
        else:
            draw.line(line, fill=color, width=2)
    for row, entries in enumerate(legend):
        x = x0 + 4
        for index, name in entries:
            draw.text((x, top + 6 + 12 * row), name, fill=COLORS[index % len(COLORS)], font=font)
            x += draw.textlength(name, font=font) + 14


def plot_curves(curves: dict[str, list[tuple[float, float]]], out: str | Path, xlabel: str = "step",
                log_y: bool = False, width: int = PANEL_W) -> Path:
    """One panel with a line per named curve of (x, y) points, e.g. two runs' quality against minutes;
    ``log_y`` draws the values on a log axis (they must all be positive)."""
    if not any(curves.values()):
        raise RunError("nothing to plot: every curve is empty")
    if log_y and any(y <= 0 for points in curves.values() for _, y in points):
        raise RunError("a log axis needs positive values; plot without log_y")
    names = [k for k, v in curves.items() if v]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = ImageFont.load_default()
    height = PANEL_H + 12 * (len(_legend_rows(probe, names, font, width - 12 - MARGIN_L - 4)) - 1)
    image = Image.new("RGB", (width, height), "white")
    _draw_panel(ImageDraw.Draw(image), (0, 0), names, curves, font, xlabel, (width, height), log_y)
    return _save(image, out)


def plot_run(run_dir: str | Path, out: str | Path | None = None, metrics: list[str] | None = None) -> Path:
    """Draw the run's curves to ``out`` (default ``RUN_DIR/curves.png``); returns the path."""
    data = series(read_metrics(run_dir))
    if metrics:
        unknown = [m for m in metrics if m not in data]
        if unknown:
            raise RunError(f"no metric {', '.join(unknown)} in {run_dir}; it has: {', '.join(data) or 'none yet'}")
        data = {k: data[k] for k in metrics}
    if not data:
        raise RunError(f"{Path(run_dir) / METRICS_NAME} has no metrics yet; plot again once the run has logged")
    groups = panels(list(data))
    cols = 2 if len(groups) > 1 else 1
    rows = math.ceil(len(groups) / cols)
    image = Image.new("RGB", (cols * PANEL_W, rows * PANEL_H), "white")
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    for index, names in enumerate(groups):
        row, col = divmod(index, cols)
        _draw_panel(draw, (col * PANEL_W, row * PANEL_H), names, data, font)
    return _save(image, Path(out) if out is not None else Path(run_dir) / "curves.png")


def _save(image: Image.Image, out: str | Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return atomic_write_bytes(out, buffer.getvalue())
