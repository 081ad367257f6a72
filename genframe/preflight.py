"""Checks a run passes before any work starts: the recipe's model against the dataset's examples, and
the memory the run would need against the memory there is. Each failure is one ``ConfigError`` line
naming the settings, instead of a shape or allocator traceback minutes later.

The model is built on PyTorch's ``meta`` device for these checks: shapes and sizes without memory
or arithmetic, and without touching the random streams a run is seeded with.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from genframe.errors import ConfigError
from genframe.interfaces import Recipe

GIB = 2**30
# weights, gradients and two Adam moments: what training holds per parameter, besides activations
COPIES_PER_PARAMETER = 4


def meta_model(recipe: Recipe, config: Any) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        return recipe.build_model(config)


def check_model_fits_data(recipe: Recipe, config: Any, example_shape: tuple[int, ...], dataset: str) -> None:
    """The recipe's own check (``Recipe.check_data``), then a forward pass of two examples on ``meta``."""
    shape = tuple(example_shape)
    recipe.check_data(config, shape, dataset)
    model = meta_model(recipe, config)
    try:
        with torch.no_grad():
            model(torch.empty((2, *shape), device="meta"))
    except Exception as exc:  # any shape error, whatever layer raises it
        reason = " ".join(str(exc).split())[:200]
        raise ConfigError(f"model: the {recipe.name} model does not take dataset {dataset}'s examples of shape "
                          f"{shape} ({type(exc).__name__}: {reason}); change the model settings to match "
                          f"(`genframe config show {recipe.name}` lists them)") from None


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a run on ``device``: the GPU's free memory, or the machine's available RAM
    (``MemAvailable`` on Linux); None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_needs(recipe: Recipe, config: Any, example_shape: tuple[int, ...]) -> dict[str, int]:
    """What the run would hold, by part: the model with its optimizer state, and the recipe's own
    (``Recipe.memory_needs``: buffers, caches)."""
    parameters = sum(p.numel() for p in meta_model(recipe, config).parameters())
    needs = {"model weights, gradients and optimizer state (model.*)": parameters * 4 * COPIES_PER_PARAMETER}
    needs.update(recipe.memory_needs(config, tuple(example_shape)))
    return needs


def check_memory(recipe: Recipe, config: Any, example_shape: tuple[int, ...], device: torch.device) -> None:
    needs = memory_needs(recipe, config, example_shape)
    available = available_memory(device)
    total = sum(needs.values())
    if available is None or total <= available:
        return
    parts = ", ".join(f"{name}: {size / GIB:,.1f} GiB" for name, size in sorted(needs.items(), key=lambda kv: -kv[1]))
    where = "free on the GPU" if device.type == "cuda" else "available"
    raise ConfigError(f"the run would need about {total / GIB:,.1f} GiB of memory ({parts}) but {available / GIB:,.1f} "
                      f"GiB is {where}; lower the setting of the largest part")
