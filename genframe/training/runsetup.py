"""Small pieces a run is assembled from: device choice, run directory, saved config, seeded streams."""

from __future__ import annotations

import hashlib
import inspect
import json
import time
import zlib
from pathlib import Path
from typing import Any

import numpy
import torch

from genframe.config.sections import DataConfig
from genframe.contracts.components import Dataset
from genframe.contracts.errors import ConfigError, RunError
from genframe.plugins.registry import Registry
from genframe.util.atomic import atomic_write_text

CONFIG_NAME = "config.json"


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for a device that is missing is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RunError(f"trainer.device={name} but no CUDA GPU is available to PyTorch; "
                           "use --set trainer.device=cpu (or auto)")
        index = name.partition(":")[2] or "0"
        if not index.isdigit():
            raise RunError(f"unknown device {name!r}; use cuda or cuda:N with N a GPU number")
        index = int(index)
        if index >= torch.cuda.device_count():
            raise RunError(f"trainer.device={name} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RunError("trainer.device=mps but MPS is not available; use --set trainer.device=cpu (or auto)")
    try:
        return torch.device(name)
    except RuntimeError:  # torch's own message lists every backend it knows, most of which genframe does not run on
        raise RunError(f"unknown device {name!r}; use cpu, cuda, cuda:N, mps or auto") from None


def new_run_dir(recipe: str, base: str | Path = "runs") -> Path:
    """``runs/<recipe>-<timestamp>``, made unique if a run started in the same second."""
    stem = Path(base) / f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    candidate, n = stem, 1
    while candidate.exists():
        n += 1
        candidate = stem.with_name(f"{stem.name}-{n}")
    return candidate


def save_resolved_config(run_dir: Path, config: dict[str, Any], resumed_at: int | None = None) -> Path:
    """Write ``config.json``; a resume that changes settings keeps the old one as ``config.stepN.json``."""
    path = run_dir / CONFIG_NAME
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if old == text:
            return path
        atomic_write_text(run_dir / f"config.step{resumed_at or 0}.json", old)
    return atomic_write_text(path, text)


def seeded_generator(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    """An independent random stream for (seed, stream), so streams never disturb each other."""
    generator = torch.Generator(device=device)
    generator.manual_seed((seed * 1_000_003 + stream) % (2**63))
    return generator


def drawn_generator(seed: int, purpose: str, *index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A random stream for one purpose (``"mask"``, ``"noise"``...) and index (an image's row, a chunk's
    number): streams of different purposes, indices or seeds never coincide, as mixed sums of them could."""
    words = [seed & (2**64 - 1), zlib.crc32(purpose.encode()), *index]
    generator = torch.Generator(device=device)
    generator.manual_seed(int(numpy.random.SeedSequence(words).generate_state(1, numpy.uint64)[0]) % (2**63))
    return generator


def epoch_permutation(n: int, seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The shuffled order of epoch ``epoch``: a function of (seed, epoch) only, for exact resume."""
    order = torch.randperm(n, generator=seeded_generator(seed, epoch))
    return order.to(device)


def rollback_seed(seed: int, rank: int, step: int, rollbacks: int) -> int:
    """The seed of the random streams after a divergence rollback to ``step``: a function of the run's
    seed, the process, the step and the rollback's number, so each rollback draws afresh and a resumed
    run still repeats exactly what the interrupted one did."""
    digest = hashlib.sha256(f"{seed}/{rank}/{step}/{rollbacks}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


class Subset(Dataset):
    """The first ``limit`` examples of a dataset (``data.limit``)."""

    def __init__(self, dataset: Dataset, limit: int) -> None:
        self.dataset, self.limit = dataset, min(limit, len(dataset))
        self.labels = None if dataset.labels is None else dataset.labels[: self.limit]
        # What describes the whole dataset rather than its examples, for code that reads it off a subset
        # (the evaluation's class count, the classifier cache's key).
        for attribute in ("num_classes", "fingerprint"):
            value = getattr(dataset, attribute, None)
            if value is not None:
                setattr(self, attribute, value)

    def __len__(self) -> int:
        return self.limit

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        return self.dataset.get_batch(indices)

    @property
    def example_shape(self) -> tuple[int, ...]:
        return self.dataset.example_shape

    def to(self, device: torch.device | str) -> Subset:
        self.dataset = self.dataset.to(device)
        return self


class WithLabels(Dataset):
    """A dataset whose batches are ``(examples, labels)``: what a class-conditional trainer trains on
    (``Trainer.takes_labels``)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset, self.labels = dataset, dataset.labels

    def __len__(self) -> int:
        return len(self.dataset)

    def get_batch(self, indices: torch.Tensor) -> Any:  # (examples, labels), as the contract says
        examples = self.dataset.get_batch(indices)
        labels = self.dataset.labels
        return examples, labels[indices.to(labels.device)].to(examples.device, torch.long)

    @property
    def example_shape(self) -> tuple[int, ...]:
        return self.dataset.example_shape


def training_data(dataset: Dataset, trainer: Any, recipe: str, data_name: str) -> Dataset:
    """``dataset`` as ``trainer`` takes its batches: with their labels for a class-conditional trainer."""
    if not getattr(trainer, "takes_labels", False):
        return dataset
    if dataset.labels is None:
        raise ConfigError(f"data.name: the {recipe} trainer trains on labels (Trainer.takes_labels) but dataset "
                          f"{data_name} has none; pick a labelled dataset, or a recipe that needs no labels")
    return WithLabels(dataset)


# Settings only some datasets read (a user's own files), passed to a factory whose signature takes them.
OPTIONAL_DATA_SETTINGS = ("path", "size", "channels", "test_fraction")


def build_dataset(registry: Registry, data: DataConfig, split: str) -> Dataset:
    """The configured dataset for ``split`` ("train" or "test"), cut to ``data.limit`` examples if set."""
    factory = registry.get("dataset", data.name)
    options = _optional_settings(factory, data)
    dataset = factory(split=split, root=data.root, download=data.download, **options)
    return dataset if data.limit is None else Subset(dataset, data.limit)


def _optional_settings(factory: Any, data: DataConfig) -> dict[str, Any]:
    """The optional data settings ``factory`` accepts; one the user set that it ignores is an error,
    since a run that silently trains on MNIST instead of the folder the user named is worse than none."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): pass only what every factory takes
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    options = {}
    for key in OPTIONAL_DATA_SETTINGS:
        value = getattr(data, key)
        if takes_any or key in parameters:
            options[key] = value
        elif value != DataConfig.model_fields[key].default:
            raise ConfigError(f"data.{key} is not used by dataset {data.name!r}; remove it, or pick a dataset "
                              f"that reads it, such as imagefolder or tensorfile")
    return options
