"""Shape changes on batches of uint8 images (k, C, H, W): grey <-> RGB, and resize-then-centre-crop.

They follow what PIL does for image files (the same luma weights, antialiased bicubic resizing), so a
tensor file and a folder of the same pictures give the same dataset up to rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma in 16-bit fixed point, exactly as PIL's convert("L") computes it.
_LUMA = (19595, 38470, 7471)


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (k, 1 or 3, H, W) as ``channels`` channels: grey is repeated, RGB becomes luma."""
    if images.shape[1] == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor(_LUMA, dtype=torch.int64).view(1, 3, 1, 1)
    luma = ((images.to(torch.int64) * weights).sum(dim=1, keepdim=True) + 0x8000) >> 16
    return luma.to(torch.uint8)


def resize_and_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (k, C, H, W) resized so the shorter side is ``size`` (antialiased bicubic), then centre-cropped
    to ``size`` x ``size``."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    scale = size / min(height, width)
    new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
    resized = F.interpolate(images.float(), size=(new_height, new_width), mode="bicubic", antialias=True,
                            align_corners=False)
    top, left = (new_height - size) // 2, (new_width - size) // 2
    cropped = resized[..., top : top + size, left : left + size]
    return cropped.round().clamp(0, 255).to(torch.uint8)  # bicubic overshoots at sharp edges
