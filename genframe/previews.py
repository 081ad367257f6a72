"""Pictures made during training: sample grids (fresh noise, and the trainer's own, e.g. its replay
buffer) and, at the end, a GIF of sampling chains. Files go under ``RUN_DIR/samples/``; the same
pictures are handed to every logger through ``genframe_log``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genframe.config import RecipeConfig
from genframe.images import save_gif, save_grid
from genframe.interfaces import Sampler, Trainer
from genframe.runsetup import seeded_generator

SAMPLES_DIR = "samples"
GIF_FRAMES = 50


class Previewer:
    def __init__(self, run_dir: Path, config: RecipeConfig, model: torch.nn.Module, sampler: Sampler,
                 trainer: Trainer, device: torch.device) -> None:
        self.dir = run_dir / SAMPLES_DIR
        self.config, self.model, self.sampler, self.trainer, self.device = config, model, sampler, trainer, device
        self.last_grid_step: int | None = None

    def sampling_model(self) -> torch.nn.Module:
        averaged = self.trainer.sampling_model()
        return self.model if averaged is None else averaged

    def _generator(self, step: int, stream: int) -> torch.Generator:
        # Its own stream: pictures never disturb training's random numbers (exact resume).
        return seeded_generator(self.config.seed, stream * 1_000_003 + step, self.device)

    def grids(self, step: int) -> dict[str, torch.Tensor]:
        """Sample grids at ``step``, saved as ``samples/stepNNNNNNN_<name>.png``."""
        lcfg = self.config.logging
        images = dict(self.trainer.preview_images(lcfg.sample_n))
        images["samples"] = self.sampler.generate(self.sampling_model(), lcfg.sample_n, steps=lcfg.sample_steps,
                                                  generator=self._generator(step, 1), device=self.device).images
        for name, batch in images.items():
            save_grid(batch, self.dir / f"step{step:07d}_{name}.png")
        self.last_grid_step = step
        return images

    def chain(self, step: int) -> dict[str, Path]:
        """A GIF of ``logging.chain_n`` chains from noise to samples, ``samples/final_chain.gif``."""
        lcfg = self.config.logging
        if lcfg.chain_n == 0:
            return {}
        steps = lcfg.sample_steps or self.sampler.generate_steps or 1
        output = self.sampler.generate(self.sampling_model(), lcfg.chain_n, steps=lcfg.sample_steps,
                                       keep_every=max(1, steps // GIF_FRAMES),
                                       generator=self._generator(step, 2), device=self.device)
        return {"chain": save_gif(output.chain or [output.images], self.dir / "final_chain.gif")}
