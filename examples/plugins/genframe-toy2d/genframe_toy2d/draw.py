"""Pictures of 2-D samples, drawn with PIL: a scatter plot with the true mode centres marked, and an
animated GIF of scatter frames for sampling chains. Files are written atomically (a run directory can
be read while training writes to it).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from genframe import atomic_write_bytes
from genframe_toy2d.data import RADIUS, centres

SIZE, MARGIN = 360, 14
VIEW = 3.0  # the default sampler box; points farther out widen the view
FRAME_MS = 80


def extent_of(states: list[torch.Tensor]) -> float:
    """Half-width of the view: the box, or wider for points beyond it, on a 0.5 grid (the same for every frame)."""
    reach = max((float(s[torch.isfinite(s).all(dim=1)].abs().max()) for s in states
                 if s.numel() and torch.isfinite(s).all(dim=1).any()), default=0.0)
    return max(VIEW, math.ceil(reach * 2) / 2)


def scatter(points: torch.Tensor, extent: float) -> Image.Image:
    """Samples as dark dots; the ring the modes sit on in grey; the mode centres as red crosses."""
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    scale = (SIZE - 2 * MARGIN) / (2 * extent)

    def pixel(x: float, y: float) -> tuple[float, float]:
        return MARGIN + (x + extent) * scale, MARGIN + (extent - y) * scale  # y points up

    draw.rectangle([MARGIN, MARGIN, SIZE - MARGIN, SIZE - MARGIN], outline=(200, 200, 200))
    (left, top), (right, bottom) = pixel(-RADIUS, RADIUS), pixel(RADIUS, -RADIUS)
    draw.ellipse([left, top, right, bottom], outline=(215, 215, 215))
    finite = points.detach().float().cpu()
    for x, y in finite[torch.isfinite(finite).all(dim=1)].tolist():
        px, py = pixel(x, y)
        draw.ellipse([px - 1.5, py - 1.5, px + 1.5, py + 1.5], fill=(30, 60, 150))
    for x, y in centres().tolist():
        px, py = pixel(x, y)
        draw.line([px - 5, py - 5, px + 5, py + 5], fill=(220, 30, 30), width=2)
        draw.line([px - 5, py + 5, px + 5, py - 5], fill=(220, 30, 30), width=2)
    return image


def save_scatter(points: torch.Tensor, path: str | Path) -> Path:
    buffer = io.BytesIO()
    scatter(points, extent_of([points])).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def save_scatter_gif(chain: list[torch.Tensor], path: str | Path) -> Path:
    """One scatter frame per chain state, all on the same axes; the last frame is held longer."""
    extent = extent_of(chain)
    frames = [scatter(state, extent) for state in chain]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=[FRAME_MS] * (len(frames) - 1) + [FRAME_MS * 20])
    return atomic_write_bytes(path, buffer.getvalue())
