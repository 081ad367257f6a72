"""The dataset over a prepared cache entry: uint8 images scaled to [-1, 1] per batch, as MNIST's are.

Images held in memory move with ``to(device)`` like MNIST's. Memory-mapped ones (too large for the free
memory) stay on disk: each batch reads only its own rows and is then moved to the dataset's device.
"""

from __future__ import annotations

import numpy as np
import torch

from genframe.contracts.components import Dataset
from genframe.data.datacache import Entry


class PreparedImages(Dataset):
    """A user's images, read once into the cache (see :mod:`genframe.data.datacache`).

    ``fingerprint`` identifies the source files and the settings that shaped them; ``classes`` are the
    class names (None when unknown or unlabelled), ``num_classes`` their count (None when unlabelled).
    """

    def __init__(self, split: str, entry: Entry, fingerprint: str) -> None:
        self.split = split
        self.fingerprint = fingerprint
        self.mapped = entry.mapped
        self.images: torch.Tensor | np.ndarray = entry.images if entry.mapped else torch.from_numpy(entry.images)
        self.labels = None if entry.labels is None else torch.from_numpy(np.asarray(entry.labels, dtype=np.int64))
        self.classes: list[str] | None = entry.details.get("classes")
        self.num_classes: int | None = entry.details.get("num_classes")
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return self.images.shape[0]

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        """Images at ``indices`` as float32 in [-1, 1]: 0 -> -1.0 and 255 -> 1.0 exactly."""
        if isinstance(self.images, torch.Tensor):
            batch = self.images[indices.to(self.images.device)]
        else:
            rows = np.ascontiguousarray(self.images[indices.cpu().numpy()])  # reads these rows only
            batch = torch.from_numpy(rows).to(self.device)
        return (batch.float() - 127.5) / 127.5

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def to(self, device: torch.device | str) -> PreparedImages:
        self.device = torch.device(device)
        if isinstance(self.images, torch.Tensor):
            self.images = self.images.to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)
        return self

    def __repr__(self) -> str:
        where = "memory-mapped" if self.mapped else str(self.device)
        return f"{type(self).__name__}(split={self.split!r}, n={len(self)}, shape={self.example_shape}, {where})"
