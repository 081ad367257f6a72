"""The small image classifier whose features and predictions the quality metrics use.

Trained once per dataset, deterministically (fixed seed, fixed data order, on the training split,
on one thread), then cached under ``$GENFRAME_CACHE_DIR`` (default ``~/.cache/genframe``) with a SHA-256 sidecar;
a cache whose checksum does not match is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from genframe.contracts.components import Dataset
from genframe.contracts.errors import DataError
from genframe.util.atomic import atomic_write_bytes, atomic_write_text
from genframe.util.resources import genframe_cache

FEATURE_DIM = 128
FEW_IMAGES = 1000  # below this many labelled training images the classifier's figures are rough (said once)
# Three stride-2 convolutions: an "image" smaller than this a side leaves them nothing to see (2-D points stored
# as (1, 1, 2), say, as a tensor file of N x 1 x 2 points reads)
MIN_SIDE = 8


def measures(shape: tuple[int, ...]) -> bool:
    """Whether examples of ``shape`` are images the classifier can measure: (C, H, W), at least ``MIN_SIDE`` a side."""
    return len(shape) == 3 and min(shape[1:]) >= MIN_SIDE


@dataclass(frozen=True)
class ClassifierSpec:
    """How the classifier is trained; part of the cache key, so changing it retrains."""

    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    train_limit: int | None = None  # first N training images (tests use a small, quick classifier)
    seed: int = 0
    version: int = 2  # bump when the architecture or the training changes (2: trained on one thread)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


class FeatureClassifier(nn.Module):
    """Three stride-2 convs and a 128-wide feature layer: small and quick to train, yet accurate enough on
    MNIST for its features to rank samples (its test accuracy: docs/evaluation.md)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 32) -> None:
        super().__init__()
        side = -(-image_size // 8)  # three stride-2 convs with padding 1: ceil(size / 8), e.g. 28 -> 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * side * side, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits)."""
        features = self.features(x)
        return features, self.head(features)


def cache_dir() -> Path:
    return genframe_cache() / "classifiers"


def train_classifier(dataset: Dataset, num_classes: int, spec: ClassifierSpec) -> FeatureClassifier:
    """Deterministic training on ``dataset`` (train split, labels required)."""
    if dataset.labels is None:
        raise DataError(f"dataset {dataset.name!r} has no labels; the quality metric needs a labelled dataset")
    # One thread, whatever this process uses: how many threads share a sum sets the order it is added
    # in, so classifiers trained with 1 and 2 threads differ, and the cache keeps whichever process
    # trained it first. The two give measurably different fds for the same images (docs/plugins.md has
    # both floors), so every fd would depend on that accident.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(dataset, num_classes, spec)
    finally:
        torch.set_num_threads(threads)


def _train(dataset: Dataset, num_classes: int, spec: ClassifierSpec) -> FeatureClassifier:
    channels, size = dataset.example_shape[0], dataset.example_shape[-1]
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing a training run's global stream
        torch.manual_seed(spec.seed)
        model = FeatureClassifier(channels, num_classes, size)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    n = len(dataset) if spec.train_limit is None else min(spec.train_limit, len(dataset))
    if n < FEW_IMAGES and spec.train_limit is None:
        warnings.warn(f"genframe: the quality classifier learns from only {n} labelled images of "
                      f"{dataset.name or 'this dataset'}; its figures are rough below {FEW_IMAGES}", UserWarning,
                      stacklevel=3)
    batch_size = min(spec.batch_size, n)  # a set smaller than a batch still trains (one batch an epoch)
    generator = torch.Generator().manual_seed(spec.seed)
    for _ in range(spec.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            _, logits = model(dataset.get_batch(index).cpu())
            loss = nn.functional.cross_entropy(logits, dataset.labels[index].cpu())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cached_path(name: str, spec: ClassifierSpec = ClassifierSpec()) -> Path:
    """Where the classifier of dataset ``name`` trained as ``spec`` is cached (its checksum beside it)."""
    return cache_dir() / f"{name}-{spec.key()}.pt"


def write_cached(path: Path, data: bytes) -> None:
    """Cache a classifier's ``torch.save`` bytes at ``path``, with the SHA-256 sidecar ``load_or_train`` checks."""
    atomic_write_bytes(path, data)
    atomic_write_text(path.with_name(path.name + ".sha256"), _sha256(data) + "\n")


def load_or_train(name: str, train_split: Dataset, num_classes: int, spec: ClassifierSpec = ClassifierSpec()):
    """The cached classifier for dataset ``name``, training (and caching) it when missing or corrupted."""
    path = cached_path(name, spec)
    sidecar = path.with_name(path.name + ".sha256")
    if path.is_file() and sidecar.is_file():
        data = path.read_bytes()
        if _sha256(data) == sidecar.read_text().strip():
            with torch.random.fork_rng(devices=[]):  # its init (overwritten below) must not move the run's stream
                model = FeatureClassifier(train_split.example_shape[0], num_classes, train_split.example_shape[-1])
            model.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
            return model.eval()
        warnings.warn(f"genframe: classifier cache {path} failed its checksum; retraining it", UserWarning, stacklevel=2)
    model = train_classifier(train_split, num_classes, spec)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    data = buffer.getvalue()
    try:
        write_cached(path, data)
    except OSError as exc:  # a read-only cache is slow, not fatal
        warnings.warn(f"genframe: could not cache the classifier at {path} ({exc}); it will be retrained next time",
                      UserWarning, stacklevel=2)
    return model
