"""MNIST and Fashion-MNIST as in-memory datasets of 1x32x32 images scaled to [-1, 1].

Images are zero-padded from 28x28 to 32x32 (a size that halves cleanly through conv stacks) and
kept as uint8 until a batch is gathered, so a whole split costs ~60 MB and moves to a GPU cheaply.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import torch

from genframe.contracts.components import Dataset
from genframe.contracts.errors import DataError
from genframe.data.download import ensure_dataset_files
from genframe.data.idx import read_idx

_SOURCE_SIZE = 28
_PAD = 2  # per side: 28 + 2 * 2 = 32
SIZE = _SOURCE_SIZE + 2 * _PAD


class MNIST(Dataset):
    """The MNIST handwritten digits, found under ``<data root>/mnist/`` or downloaded there."""

    name: ClassVar[str] = "mnist"
    subdir: ClassVar[str] = "mnist"
    num_classes: ClassVar[int] = 10
    #: split -> (images file, labels file)
    split_files: ClassVar[dict[str, tuple[str, str]]] = {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
    #: file -> SHA-256 of its decompressed content (the .gz wrappers differ between copies)
    checksums: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
    mirrors: ClassVar[tuple[str, ...]] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )

    def __init__(
        self, split: str = "train", root: str | os.PathLike[str] | None = None, download: bool = True
    ) -> None:
        if split not in self.split_files:
            raise DataError(
                f"Unknown {self.name} split {split!r}; expected one of {sorted(self.split_files)}; "
                f"fix the split name in your config."
            )
        self.split = split
        image_file, label_file = self.split_files[split]
        paths = ensure_dataset_files(
            self.subdir,
            {f: self.checksums[f] for f in (image_file, label_file)},
            list(self.mirrors),
            root=root,
            download=download,
        )
        images = read_idx(paths[image_file])
        labels = read_idx(paths[label_file])
        self._check(images, labels, paths[image_file].name, paths[label_file].name)
        self.images = _pad_to_tensor(images)
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def _check(self, images: np.ndarray, labels: np.ndarray, image_name: str, label_name: str) -> None:
        """Checksums already passed; this guards against a checksum table paired with the wrong files."""
        fix = "check that the files in the data folder belong to this dataset"
        if images.ndim != 3 or images.shape[1:] != (_SOURCE_SIZE, _SOURCE_SIZE) or images.dtype != np.uint8:
            raise DataError(
                f"{self.name} {image_name} holds {images.dtype} images of shape {images.shape}; "
                f"expected uint8 of shape (N, {_SOURCE_SIZE}, {_SOURCE_SIZE}); {fix}."
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"{self.name} {label_name} holds labels of shape {labels.shape} for {len(images)} images "
                f"in {image_name}; expected ({len(images)},); {fix}."
            )
        if len(labels) and int(labels.max()) >= self.num_classes:
            raise DataError(
                f"{self.name} {label_name} has label {int(labels.max())}; "
                f"expected 0..{self.num_classes - 1}; {fix}."
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """Images at ``indices`` as float32 in [-1, 1] (the padding is exactly -1)."""
        batch = self.images[indices.to(self.images.device)]
        return (batch.float() - 127.5) / 127.5

    @property
    def example_shape(self) -> tuple[int, ...]:
        return (1, SIZE, SIZE)

    def to(self, device: torch.device | str) -> MNIST:
        self.images = self.images.to(device)
        self.labels = self.labels.to(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, n={len(self)}, device={self.images.device})"


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: MNIST's format and sizes, ten clothing classes."""

    name: ClassVar[str] = "fashion_mnist"
    subdir: ClassVar[str] = "fashion-mnist"
    checksums: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
    mirrors: ClassVar[tuple[str, ...]] = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


def _pad_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 1, 32, 32) uint8 tensor with a zero border (zero scales to -1)."""
    padded = np.zeros((len(images), 1, SIZE, SIZE), dtype=np.uint8)
    padded[:, 0, _PAD : _PAD + _SOURCE_SIZE, _PAD : _PAD + _SOURCE_SIZE] = images
    return torch.from_numpy(padded)
