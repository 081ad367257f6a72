"""The plugin's entry point (``[project.entry-points.genframe] toy2d = "genframe_toy2d.plugin"``).

Registers the ``toy2d`` recipe and the ``ring8`` dataset. The recipe shows what a family whose samples
are not images overrides: how its samples are drawn (scatter plots) and how their quality is measured.
Components are imported when a run uses them, so listing plugins imports no torch.
"""

from __future__ import annotations

from pathlib import Path

from genframe import Recipe, hookimpl
from genframe_toy2d.config import Toy2DConfig

RING8 = "ring8"  # the dataset's registered name, known here without importing it (and torch)


class Toy2DRecipe(Recipe):
    name = "toy2d"
    description = "2-D energy-based model: MLP energy, Langevin sampling, contrastive divergence on ring8"
    config_class = Toy2DConfig

    def build_model(self, config: Toy2DConfig):
        from genframe_toy2d.model import EnergyMLP

        return EnergyMLP(config.model.hidden)

    def build_sampler(self, config: Toy2DConfig):
        from genframe_toy2d.sampler import LangevinSampler

        return LangevinSampler.from_config(config.sampler)

    def build_trainer(self, config: Toy2DConfig, model, sampler, device):
        from genframe_toy2d.trainer import CDTrainer

        return CDTrainer(model, sampler, config, device)

    def draw_samples(self, samples, path: Path) -> Path:
        from genframe_toy2d.draw import save_scatter

        return save_scatter(samples, path)

    def draw_chain(self, chain: list, path: Path) -> Path:
        from genframe_toy2d.draw import save_scatter_gif

        return save_scatter_gif(chain, path)

    def metric_goals(self) -> dict[str, str]:
        # its own metric's numbers: sweep summaries report the best of each the right way round
        return {"eval/modes": "max", "eval/near": "max", "eval/energy_distance": "min"}

    def quality_metric(self, config: Toy2DConfig, registry):
        # The metric knows ring8's modes; on any other dataset the core's own rules apply.
        if config.data.name != RING8:
            return None
        from genframe_toy2d.metric import RingMetric

        return RingMetric(config.sampler.box)


@hookimpl
def genframe_register(registry) -> None:
    registry.add("recipe", Toy2DRecipe.name, Toy2DRecipe())
    registry.add("dataset", RING8, "genframe_toy2d.data:Ring8")
    registry.add("model", "energy_mlp", "genframe_toy2d.model:EnergyMLP")
