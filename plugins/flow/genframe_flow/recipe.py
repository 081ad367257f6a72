"""The ``flow`` recipe: conditional flow matching of images with a small U-Net and an ODE sampler.

Importing it imports no torch: the builders import the net, sampler and trainer when a run asks for them.
"""

from __future__ import annotations

import math

from genframe import ConfigError, ExampleBytes, Recipe
from genframe_flow.config import FlowConfig

FLOAT = 4
# Activations a U-Net level keeps per pixel and channel for the backward pass: two convolutions, two group
# norms, two SiLUs and the skip (a rough count: enough to tell a batch that fits from one far too big).
KEPT_PER_LEVEL = 8


class FlowRecipe(Recipe):
    """Flow matching: a U-Net v(x, t) regressed on straight noise-to-data paths, sampled by an ODE solver."""

    name = "flow"
    description = "Flow matching: U-Net velocity net, conditional flow matching, Euler/Heun/midpoint/adaptive ODE"
    config_class = FlowConfig

    def __init__(self, registry) -> None:
        self.registry = registry  # models are looked up by name, so a plugin can add an architecture

    def build_model(self, config: FlowConfig):
        return self.registry.get("model", config.model.name).from_config(config.model)

    def build_sampler(self, config: FlowConfig):
        from genframe_flow.sampler import ODESampler

        shape = (config.model.in_channels, config.model.image_size, config.model.image_size)
        return ODESampler.from_config(config.sampler, shape)

    def build_trainer(self, config: FlowConfig, model, sampler, device):
        from genframe_flow.trainer import FlowTrainer

        return FlowTrainer(model, config, device, seed=config.seed)

    def model_inputs(self, config: FlowConfig, examples):
        """The net takes a time beside the images."""
        import torch

        return (examples, torch.zeros(len(examples), device=examples.device))

    def fit_to_data(self, config: FlowConfig, example_shape: tuple[int, ...]) -> FlowConfig:
        """The net's input channels and image size follow square image data, unless set."""
        if len(example_shape) != 3 or example_shape[1] != example_shape[2]:
            return config
        follow = {key: value for key, value in (("in_channels", example_shape[0]), ("image_size", example_shape[1]))
                  if key not in config.model.model_fields_set}
        if not follow:
            return config
        return config.model_copy(update={"model": config.model.model_copy(update=follow)})

    def check_data(self, config: FlowConfig, example_shape: tuple[int, ...], dataset: str) -> None:
        model = config.model
        if len(example_shape) != 3 or example_shape[1] != example_shape[2]:
            raise ConfigError(f"dataset {dataset} has examples of shape {tuple(example_shape)}, not square images; "
                              "the U-Net takes square images: set data.size=N to resize and centre-crop them")
        halvings = 2 ** (len(model.channels) - 1)
        if example_shape[1] % halvings:
            raise ConfigError(f"model.channels has {len(model.channels)} levels, so the image side must divide by "
                              f"{halvings}, and dataset {dataset}'s is {example_shape[1]}; set data.size to a "
                              f"multiple of {halvings} or use fewer levels")
        built = (model.in_channels, model.image_size, model.image_size)
        if tuple(example_shape) != built:
            raise ConfigError(f"model: in_channels={model.in_channels} and image_size={model.image_size} make "
                              f"examples of shape {built}, but dataset {dataset} has {tuple(example_shape)}; set "
                              f"model.in_channels={example_shape[0]} and model.image_size={example_shape[-1]}")

    def bytes_per_example(self, config: FlowConfig, example_shape: tuple[int, ...]) -> ExampleBytes:
        """Activations of every level for the backward pass (training, twice for their gradients); a sample
        holds the solver's few states and one forward pass."""
        side, kept = example_shape[-1], 0
        for width in config.model.channels:
            kept += KEPT_PER_LEVEL * width * side * side * 2  # down and up
            side //= 2
        image = math.prod(example_shape)
        return ExampleBytes(training=FLOAT * (2 * kept + 4 * image), sampling=FLOAT * (kept // 2 + 8 * image))

    def score_functions(self, config: FlowConfig) -> dict:
        from genframe_flow.likelihood import loglik

        return {"loglik": loglik}

    def metric_goals(self) -> dict[str, str]:
        return {"loss": "min", "val/loss": "min"}
