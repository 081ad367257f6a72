"""Pictures made during training: previews of samples (fresh from the sampler, and the trainer's own,
e.g. its replay buffer) and, at the end, an animation of sampling chains. Files go under
``RUN_DIR/samples/``, drawn by the recipe (``Recipe.draw_samples`` / ``draw_chain``: an image grid
by default, a scatter plot for 2-D points, ...), and are handed to every logger through ``genframe_log``:
image batches (N, C, H, W) as tensors, anything else as the path of its picture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from genframe.config.batches import gif_keep_every
from genframe.contracts.components import Recipe, Sampler, Trainer
from genframe.training.runsetup import seeded_generator

if TYPE_CHECKING:  # pragma: no cover
    from genframe.config.sections import RecipeConfig

SAMPLES_DIR = "samples"


class Previewer:
    def __init__(self, run_dir: Path, config: RecipeConfig, recipe: Recipe, sampler: Sampler, trainer: Trainer,
                 device: torch.device, sampling_model: Callable[[], torch.nn.Module]) -> None:
        """``sampling_model()`` gives the network to sample with now (the trained one, or e.g. averaged weights)."""
        self.dir = run_dir / SAMPLES_DIR
        self.config, self.recipe, self.sampler, self.trainer, self.device = config, recipe, sampler, trainer, device
        self.sampling_model = sampling_model
        self.last_grid_step: int | None = None

    def _generator(self, step: int, stream: int) -> torch.Generator:
        # Its own stream: pictures never disturb training's random numbers (exact resume).
        return seeded_generator(self.config.seed, stream * 1_000_003 + step, self.device)

    def grids(self, step: int) -> dict[str, torch.Tensor | Path]:
        """Previews at ``step``, saved as ``samples/stepNNNNNNN_<name>.png``; none when ``logging.sample_n`` is 0."""
        lcfg = self.config.logging
        if lcfg.sample_n == 0:
            return {}
        batches = dict(self.trainer.preview_images(lcfg.sample_n))
        batches["samples"] = self.sampler.generate(self.sampling_model(), lcfg.sample_n, steps=lcfg.sample_steps,
                                                   generator=self._generator(step, 1), device=self.device).images
        pictures: dict[str, torch.Tensor | Path] = {}
        self.dir.mkdir(parents=True, exist_ok=True)  # the core makes every folder it hands a recipe
        for name, batch in batches.items():
            path = self.recipe.draw_samples(batch, self.dir / f"step{step:07d}_{name}.png")
            # Loggers draw image batches themselves (as they always have); other samples only the recipe can draw.
            pictures[name] = batch if batch.dim() == 4 else path
        self.last_grid_step = step
        return pictures

    def chain(self, step: int) -> dict[str, Path]:
        """An animation of ``logging.chain_n`` chains from their start to samples, ``samples/final_chain.gif``."""
        lcfg = self.config.logging
        if lcfg.chain_n == 0:
            return {}
        steps = lcfg.sample_steps or self.sampler.generate_steps or 1
        output = self.sampler.generate(self.sampling_model(), lcfg.chain_n, steps=lcfg.sample_steps,
                                       keep_every=gif_keep_every(steps),
                                       generator=self._generator(step, 2), device=self.device)
        self.dir.mkdir(parents=True, exist_ok=True)
        return {"chain": self.recipe.draw_chain(output.chain or [output.images], self.dir / "final_chain.gif")}
