"""Write a small colour image folder to try genframe on your own data: Fashion-MNIST tinted by class.

    python examples/tinted_fashion.py --out data/tinted                  # 600 train + 100 test images a class
    python examples/tinted_fashion.py --out data/tinted --per-class 50   # a quick one

Each class gets one of three colours (class 0, 3, 6, 9 red; 1, 4, 7 green; 2, 5, 8 blue), so a model
has to learn colour as well as shape. The folder is laid out as genframe's ``imagefolder`` dataset reads
it: ``train/`` and ``test/``, one sub-folder per class (the labels), 32x32 RGB PNG files. Reads the
Fashion-MNIST files from ``$GENFRAME_DATA_DIR`` (or downloads them).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
PALETTE = np.array([(255, 70, 70), (70, 230, 70), (80, 140, 255)], dtype=np.float32) / 255


def write_tinted(out: str | Path, per_class: int = 600, test_per_class: int | None = None) -> Path:
    """The tinted folder at ``out`` (``per_class`` training and ``test_per_class`` test images per class)."""
    from genframe.data.mnist import FashionMNIST

    out = Path(out)
    test_per_class = max(1, per_class // 6) if test_per_class is None else test_per_class
    for split, count in (("train", per_class), ("test", test_per_class)):
        data = FashionMNIST(split)
        images, labels = data.images[:, 0].numpy(), data.labels.numpy()
        for label, name in enumerate(CLASSES):
            folder = out / split / f"{label}-{name}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in np.flatnonzero(labels == label)[:count]:
                grey = images[index].astype(np.float32)[..., None]  # 32x32x1, 0..255
                rgb = (grey * PALETTE[label % len(PALETTE)]).round().astype(np.uint8)
                Image.fromarray(rgb, "RGB").save(folder / f"{index:05d}.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write (train/ and test/ inside)")
    parser.add_argument("--per-class", type=int, default=600, help="training images per class")
    args = parser.parse_args()
    folder = write_tinted(args.out, args.per_class)
    print(f"wrote {sum(1 for _ in folder.rglob('*.png'))} images to {folder}")


if __name__ == "__main__":
    main()
