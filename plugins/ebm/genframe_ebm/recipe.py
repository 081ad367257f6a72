"""The ``ebm`` recipe: its config and the builders of its model, sampler and trainer.

Importing it imports no torch: the builders import the energy net, sampler and trainer when a run
asks for them, so listing plugins and printing the config stay instant.
"""

from __future__ import annotations

import math

from genframe import Recipe
from genframe_ebm.config import EBMConfig


class EBMRecipe(Recipe):
    """Energy-based model trained by contrastive divergence with SGLD and a replay buffer."""

    name = "ebm"
    description = "Energy-based model: Swish CNN score, SGLD sampling, replay buffer, contrastive divergence"
    config_class = EBMConfig

    def __init__(self, registry) -> None:
        self.registry = registry  # models are looked up by name, so a plugin can add an architecture

    def build_model(self, config: EBMConfig):
        return self.registry.get("model", config.model.name).from_config(config.model)

    def build_sampler(self, config: EBMConfig):
        from genframe_ebm.sampler import SGLDSampler

        shape = (config.model.in_channels, config.model.image_size, config.model.image_size)
        return SGLDSampler.from_config(config.sampler, shape)

    def check_data(self, config: EBMConfig, example_shape: tuple[int, ...], dataset: str) -> None:
        from genframe.errors import ConfigError

        model = config.model
        built = (model.in_channels, model.image_size, model.image_size)
        if tuple(example_shape) != built:  # the sampler's chains would not match the real images
            raise ConfigError(f"model: in_channels={model.in_channels} and image_size={model.image_size} make "
                              f"examples of shape {built}, but dataset {dataset} has examples of shape {tuple(example_shape)}; "
                              f"set model.in_channels={example_shape[0]} and model.image_size={example_shape[-1]}")

    def memory_needs(self, config: EBMConfig, example_shape: tuple[int, ...]) -> dict[str, int]:
        per_example = 4 * math.prod(example_shape)  # float32 chains
        return {f"replay buffer (buffer.size={config.buffer.size})": config.buffer.size * per_example}

    def build_trainer(self, config: EBMConfig, model, sampler, device):
        from genframe_ebm.trainer import CDTrainer

        return CDTrainer(model, sampler, config, device, seed=config.seed)
