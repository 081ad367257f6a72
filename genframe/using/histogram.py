"""A picture of score distributions: one histogram per set of inputs, overlaid on shared bins.

Drawn with matplotlib like the training curves (``genframe.using.plot``); the format follows the suffix.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genframe.using.plot import new_figure, picture_format, save_figure

BINS = 60


def check_picture_path(out: str | Path) -> None:
    """A bad suffix is an error before any work."""
    picture_format(Path(out))


def draw_histograms(scores: dict[str, torch.Tensor], out: str | Path, xlabel: str, title: str = "") -> Path:
    """Overlaid histograms (as densities, so sets of different sizes compare) of each named set's scores."""
    figure = new_figure(1, 1)
    figure.set_size_inches(7.0, 4.0)
    axes = figure.add_subplot()
    finite = {name: values[torch.isfinite(values)].double() for name, values in scores.items()}
    everything = torch.cat([values for values in finite.values() if len(values)] or [torch.zeros(1)])
    low, high = float(everything.quantile(0.001)), float(everything.quantile(0.999))
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = torch.linspace(low, high, BINS + 1).tolist()
    for name, values in finite.items():
        clipped = values.clamp(low, high).numpy()  # the far tails land in the end bins, not off the picture
        axes.hist(clipped, bins=edges, density=True, histtype="stepfilled", alpha=0.35, label=f"{name} ({len(values)})")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("density")
    if title:
        axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    return save_figure(figure, out)
