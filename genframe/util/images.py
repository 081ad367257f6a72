"""Pictures of samples: a PNG grid of images and an animated GIF of a sampling chain.

Images arrive as float tensors (N, C, H, W) in [-1, 1], the convention of every genframe dataset.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from genframe.util.atomic import atomic_write_bytes


def grid_array(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile ``images`` into one uint8 array (H, W) for 1 channel or (H, W, 3) for 3 channels."""
    images = images.detach().float().cpu().clamp(-1, 1)
    n, channels, height, width = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    ncol = math.ceil(n / nrow)
    pixels = ((images + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    grid = np.zeros((ncol * (height + padding) + padding, nrow * (width + padding) + padding, channels), np.uint8)
    for index in range(n):
        row, col = divmod(index, nrow)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[top : top + height, left : left + width] = pixels[index]
    return grid[..., 0] if channels == 1 else grid


def grid_image(images: torch.Tensor, nrow: int | None = None, scale: int = 2) -> Image.Image:
    image = Image.fromarray(grid_array(images, nrow))
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write a PNG grid of ``images`` atomically."""
    buffer = io.BytesIO()
    grid_image(images, nrow, scale).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def save_gif(chain: list[torch.Tensor], path: str | Path, nrow: int | None = None, frame_ms: int = 80) -> Path:
    """Write an animated GIF with one grid per chain state; the last frame is held longer."""
    if not chain:
        raise ValueError("save_gif needs at least one frame")
    frames = [grid_image(state, nrow) for state in chain]
    durations = [frame_ms] * (len(frames) - 1) + [frame_ms * 20]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return atomic_write_bytes(path, buffer.getvalue())
