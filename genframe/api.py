"""Python API beyond training: recipe configs, loading a trained model, sampling to files.

The CLI calls these same functions; from another project::

    import genframe
    result = genframe.train("ebm", {"trainer": {"max_steps": 20}})
    model = genframe.load(result.run_dir)
    images = model.sample(16, steps=200).images
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genframe.atomic import atomic_write
from genframe.callback_list import CallbackList, chosen_callbacks
from genframe.checkpoint import load_checkpoint, resolve_checkpoint, run_dir_of
from genframe.config import RecipeConfig, build_config
from genframe.context import RunContext
from genframe.errors import CheckpointError
from genframe.interfaces import SampleOutput, Sampler
from genframe.plugins import get_host
from genframe.recipes import get_recipe, recipe_config  # noqa: F401  (part of this API)
from genframe.runsetup import resolve_device, seeded_generator


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
    """Load a run directory (its last checkpoint) or a checkpoint file for sampling.

    The model is the one the run samples with: when a callback supplied other weights (averaged
    ones, a mixture of snapshots), the run's callbacks are built again from its config to hold them.
    """
    checkpoint = resolve_checkpoint(path)
    state = load_checkpoint(checkpoint)
    recipe = get_recipe(state["recipe"])
    state = recipe.config_class.upgrade_checkpoint(state)
    config = build_config(recipe.config_class, data=state["config"])
    torch_device = resolve_device(device)
    model = recipe.build_model(config)
    model.load_state_dict(state["model"])
    if "sampling_model" in state:
        run = RunContext(run_dir_of(checkpoint), state["recipe"], config, torch_device, 1, state["loop"]["step"],
                         model=model, recipe=recipe, registry=get_host().registry)
        model = CallbackList(chosen_callbacks(config, get_host().registry), run).sampling_model()
        if model is None:
            raise CheckpointError(f"{checkpoint} holds sampling weights but none of its config's callbacks "
                                  "supplies a sampling model; is the plugin that registered it installed?")
        model.load_state_dict(state["sampling_model"])
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

    Writes the recipe's picture of the first ``grid_n`` (``Recipe.draw_samples``: an image grid by
    default) to ``out``, and if asked its animation of the first chains (``Recipe.draw_chain``) to
    ``gif`` and all samples as a tensor file (``torch.load`` gives an (n, ...) float32 tensor shaped
    like the dataset's examples, in the data's range). ``progress(k)`` is called as each chunk of
    ``k`` samples is done.
    """
    from genframe.generation import generate_in_chunks

    loaded = load(path, device)
    recipe = get_recipe(loaded.recipe_name)
    total = loaded.sampler.generate_steps if steps is None else steps
    keep_every = max(1, (total or 1) // frames) if gif else None
    output = generate_in_chunks(loaded.sampler, loaded.model, n, steps, seed, stream=0, device=loaded.device,
                                chunk=chunk, progress=progress, keep_every=keep_every, keep_n=grid_n)
    if tensor is not None:  # first: the costly result is on disk before anything else can fail
        atomic_write(tensor, lambda handle: torch.save(output.images, handle))
    recipe.draw_samples(output.images[:grid_n], Path(out))
    if gif:
        recipe.draw_chain(output.chain or [output.images[:grid_n]], Path(gif))
    return output
