"""The ``ebm`` recipe: its config and the builders of its model, sampler and trainer.

Importing it imports no torch: the builders import the energy net, sampler and trainer when a run
asks for them, so listing plugins and printing the config stay instant.
"""

from __future__ import annotations

import math

from genframe import ExampleBytes, Recipe
from genframe_ebm.config import EBMConfig

FLOAT = 4  # bytes: chains, activations and gradients are float32
# Copies of a chain a Langevin step holds besides the net's activations: the state, its noisy copy,
# the gradient with respect to it and the clamped result.
CHAIN_COPIES = 4


def activations_per_example(config: EBMConfig, example_shape: tuple[int, ...]) -> int:
    """Numbers the Swish net keeps per example for its backward pass: each stride-2 conv's output and its
    Swish, then the dense layers'. A rough count from the settings (other registered models are counted
    as if they were this one): enough to tell a batch that fits from one thousands of times too big."""
    size, count = example_shape[-1], 0
    for width, kernel in zip(config.model.channels, config.model.kernel_sizes):
        size = (size + 2 * (kernel // 2) - kernel) // 2 + 1
        count += 2 * width * size * size
    return count + 2 * config.model.hidden + 1


def chain_bytes(config: EBMConfig, example_shape: tuple[int, ...]) -> int:
    """Bytes one chain (or training example) holds in a forward and backward pass: its own copies, and
    the activations kept for the backward pass plus their gradients, of the same size (x2). A slight
    overestimate of what a CPU training step measures, so a batch it lets through fits (the figures:
    docs/run-directories.md, "Checked before any work")."""
    return FLOAT * (CHAIN_COPIES * math.prod(example_shape) + 2 * activations_per_example(config, example_shape))


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

    def fit_to_data(self, config: EBMConfig, example_shape: tuple[int, ...]) -> EBMConfig:
        """The net's input channels and image size follow square image data, unless set."""
        if len(example_shape) != 3 or example_shape[1] != example_shape[2]:
            return config  # not square images: check_data says what to set
        follow = {key: value for key, value in (("in_channels", example_shape[0]), ("image_size", example_shape[1]))
                  if key not in config.model.model_fields_set}
        if not follow:
            return config
        return config.model_copy(update={"model": config.model.model_copy(update=follow)})

    def check_data(self, config: EBMConfig, example_shape: tuple[int, ...], dataset: str) -> None:
        from genframe import ConfigError

        model = config.model
        built = (model.in_channels, model.image_size, model.image_size)
        if len(example_shape) == 3 and example_shape[1] != example_shape[2]:  # the net takes square images
            raise ConfigError(f"dataset {dataset} has examples of shape {tuple(example_shape)}, not square; the "
                              f"Swish net takes square images: set data.size=N to resize and centre-crop them")
        if tuple(example_shape) != built:  # the sampler's chains would not match the real images
            raise ConfigError(f"model: in_channels={model.in_channels} and image_size={model.image_size} make "
                              f"examples of shape {built}, but dataset {dataset} has examples of shape {tuple(example_shape)}; "
                              f"set model.in_channels={example_shape[0]} and model.image_size={example_shape[-1]}")

    def memory_needs(self, config: EBMConfig, example_shape: tuple[int, ...]) -> dict[str, int]:
        """The replay buffer: float32 chains."""
        return {f"replay buffer (buffer.size={config.buffer.size})": config.buffer.size * FLOAT * math.prod(example_shape)}

    def bytes_per_example(self, config: EBMConfig, example_shape: tuple[int, ...]) -> ExampleBytes:
        """A chain's bytes while it is drawn; in training twice that, as the loss pass runs the real and
        the fake examples together."""
        chain = chain_bytes(config, example_shape)
        return ExampleBytes(training=2 * chain, sampling=chain)

    def score_functions(self, config: EBMConfig) -> dict:
        from genframe_ebm.scores import SCORES

        return dict(SCORES)

    def build_trainer(self, config: EBMConfig, model, sampler, device):
        from genframe_ebm.trainer import CDTrainer

        return CDTrainer(model, sampler, config, device, seed=config.seed)
