"""Which pixels ``genframe inpaint`` hides: masks named on the command line, as boolean "known" tensors.

- ``bottom-half``, ``top-half``, ``left-half``, ``right-half``: that half hidden;
- ``center``: the central square of half the side hidden;
- ``random:P``: each pixel hidden with probability P (its own draw for each image, from the seed);
- ``FILE.png``: a picture the images' size, white (or any value above mid-grey) where pixels are hidden.

A mask is True where a pixel is known (kept), shaped (N or 1, 1, H, W): every channel of a pixel together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genframe.contracts.errors import DataError

HALVES = ("bottom-half", "top-half", "left-half", "right-half")
NAMES = (*HALVES, "center", "random:P", "FILE.png")


def known_pixels(spec: str, n: int, height: int, width: int, seed: int = 0, offset: int = 0) -> torch.Tensor:
    """The known pixels of ``n`` images (rows ``offset`` .. ``offset + n`` of the set, for ``random:P``)."""
    known = torch.ones((1, 1, height, width), dtype=torch.bool)
    if spec == "bottom-half":
        known[..., height // 2:, :] = False
    elif spec == "top-half":
        known[..., : height - height // 2, :] = False
    elif spec == "left-half":
        known[..., : width - width // 2] = False
    elif spec == "right-half":
        known[..., width // 2:] = False
    elif spec == "center":
        top, left = height // 4, width // 4
        known[..., top: top + height // 2, left: left + width // 2] = False
    elif spec.startswith("random:"):
        hidden = _probability(spec)
        from genframe.training.runsetup import drawn_generator

        rows = [torch.rand((1, height, width), generator=drawn_generator(seed, "mask", offset + i))
                for i in range(n)]  # one draw per image: the same mask whatever the chunking
        return torch.stack(rows) >= hidden
    else:
        return _from_file(spec, height, width)
    return known


def _probability(spec: str) -> float:
    try:
        value = float(spec.partition(":")[2])
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise DataError(f"mask {spec!r}: random:P hides each pixel with probability P, a number between 0 and 1 "
                        f"(e.g. random:0.5)")
    return value


def _from_file(spec: str, height: int, width: int) -> torch.Tensor:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DataError(f"mask {spec!r} is neither a file nor one of {', '.join(NAMES)}")
    from PIL import Image

    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.uint8)
    except Exception as exc:  # PIL raises many types for a file it cannot read
        raise DataError(f"mask {path} cannot be read as an image ({' '.join(str(exc).split())[:200]})") from None
    if grey.shape != (height, width):
        raise DataError(f"mask {path} is {grey.shape[1]}x{grey.shape[0]} pixels, but the images are {width}x{height}; "
                        f"draw the mask at the images' size (white where pixels are hidden)")
    known = torch.from_numpy(grey <= 127)[None, None]
    if known.all():
        raise DataError(f"mask {path} hides no pixel; paint the pixels to complete white")
    return known
