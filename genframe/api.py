"""Python API beyond training: recipe configs, loading a trained model, sampling to files.

The CLI calls these same functions; from another project::

    import genframe
    result = genframe.train("ebm", {"trainer": {"max_steps": 20}})
    model = genframe.load(result.run_dir)
    images = model.sample(16, steps=200).images
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genframe.atomic import atomic_write
from genframe.checkpoint import load_checkpoint, resolve_checkpoint
from genframe.config import RecipeConfig, build_config
from genframe.images import save_gif, save_grid
from genframe.interfaces import Recipe, SampleOutput, Sampler
from genframe.plugins import get_host
from genframe.runsetup import resolve_device, seeded_generator


def get_recipe(name: str) -> Recipe:
    """The registered recipe ``name`` (clear error listing known recipes otherwise)."""
    return get_host().entry("recipe", name).obj


def recipe_config(
    name: str, config: Mapping[str, Any] | str | Path | None = None, overrides: Iterable[str] = ()
) -> RecipeConfig:
    """The validated config of recipe ``name``: defaults, then a dict or file, then overrides."""
    config_class = get_recipe(name).config_class
    if config is None or isinstance(config, Mapping):
        return build_config(config_class, data=config, overrides=overrides)
    return build_config(config_class, path=config, overrides=overrides)


@dataclass
class LoadedModel:
    """A trained model with its sampler and config, ready to sample."""

    recipe_name: str
    config: RecipeConfig
    model: torch.nn.Module
    sampler: Sampler
    device: torch.device
    checkpoint: Path
    step: int
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # what loggers saved in the run (e.g. a W&B id)

    def sample(self, n: int = 64, steps: int | None = None, keep_every: int | None = None, seed: int = 0) -> SampleOutput:
        """``n`` fresh samples with the recipe's generation settings (``steps`` overrides them)."""
        generator = seeded_generator(seed, 0, self.device)
        return self.sampler.generate(self.model, n, steps=steps, keep_every=keep_every,
                                     generator=generator, device=self.device)


def load(path: str | Path, device: str = "auto") -> LoadedModel:
    """Load a run directory (its last checkpoint) or a checkpoint file for sampling."""
    checkpoint = resolve_checkpoint(path)
    state = load_checkpoint(checkpoint)
    recipe = get_recipe(state["recipe"])
    config = build_config(recipe.config_class, data=state["config"])
    torch_device = resolve_device(device)
    kept = "sampling_model" in state  # e.g. averaged weights, or a mixture of snapshots
    model = recipe.build_sampling_model(config) if kept else recipe.build_model(config)
    model.load_state_dict(state["sampling_model" if kept else "model"])
    model.to(torch_device).eval()
    return LoadedModel(state["recipe"], config, model, recipe.build_sampler(config), torch_device,
                       checkpoint, state["loop"]["step"], state["loop"]["epoch"], dict(state.get("extra", {})))


def sample_to_files(
    path: str | Path,
    out: str | Path,
    n: int = 64,
    steps: int | None = None,
    gif: str | Path | None = None,
    frames: int = 50,
    seed: int = 0,
    device: str = "auto",
    tensor: str | Path | None = None,
    chunk: int | None = None,
    grid_n: int = 256,
    progress: Callable[[int], None] | None = None,
) -> SampleOutput:
    """Generate ``n`` samples from a trained run, ``chunk`` at a time (default: by device).

    Writes a PNG grid of the first ``grid_n``, and if asked a GIF of the first chains and all
    samples as a tensor file (``torch.load`` gives an (n, C, H, W) float32 tensor in the data's
    range). ``progress(k)`` is called as each chunk of ``k`` samples is done.
    """
    from genframe.generation import generate_in_chunks

    loaded = load(path, device)
    total = loaded.sampler.generate_steps if steps is None else steps
    keep_every = max(1, (total or 1) // frames) if gif else None
    output = generate_in_chunks(loaded.sampler, loaded.model, n, steps, seed, stream=0, device=loaded.device,
                                chunk=chunk, progress=progress, keep_every=keep_every, keep_n=grid_n)
    if tensor is not None:  # first: the costly result is on disk before anything else can fail
        atomic_write(tensor, lambda handle: torch.save(output.images, handle))
    save_grid(output.images[:grid_n], out)
    if gif:
        save_gif(output.chain or [output.images[:grid_n]], gif)
    return output
