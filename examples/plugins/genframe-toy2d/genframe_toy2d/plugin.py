"""The plugin's entry point (``[project.entry-points.genframe] toy2d = "genframe_toy2d.plugin"``).

Registers the ``toy2d`` recipe and the ``ring8`` dataset. The recipe shows what a family whose samples
are not images overrides: how its samples are drawn (scatter plots) and how their quality is measured.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genframe import Recipe, hookimpl
from genframe_toy2d.config import Toy2DConfig
from genframe_toy2d.data import Ring8
from genframe_toy2d.draw import save_scatter, save_scatter_gif
from genframe_toy2d.metric import RingMetric
from genframe_toy2d.model import EnergyMLP
from genframe_toy2d.sampler import LangevinSampler
from genframe_toy2d.trainer import CDTrainer


class Toy2DRecipe(Recipe):
    name = "toy2d"
    description = "2-D energy-based model: MLP energy, Langevin sampling, contrastive divergence on ring8"
    config_class = Toy2DConfig

    def build_model(self, config: Toy2DConfig) -> EnergyMLP:
        return EnergyMLP(config.model.hidden)

    def build_sampler(self, config: Toy2DConfig) -> LangevinSampler:
        return LangevinSampler.from_config(config.sampler)

    def build_trainer(self, config: Toy2DConfig, model, sampler, device) -> CDTrainer:
        return CDTrainer(model, sampler, config, device)

    def draw_samples(self, samples: torch.Tensor, path: Path) -> Path:
        return save_scatter(samples, path)

    def draw_chain(self, chain: list[torch.Tensor], path: Path) -> Path:
        return save_scatter_gif(chain, path)

    def quality_metric(self, config: Toy2DConfig, registry) -> RingMetric | None:
        # The metric knows ring8's modes; on any other dataset the core's own rules apply.
        return RingMetric(config.sampler.box) if config.data.name == Ring8.name else None


@hookimpl
def genframe_register(registry) -> None:
    registry.add("recipe", Toy2DRecipe.name, Toy2DRecipe())
    registry.add("dataset", Ring8.name, Ring8)
    registry.add("model", "energy_mlp", EnergyMLP)
