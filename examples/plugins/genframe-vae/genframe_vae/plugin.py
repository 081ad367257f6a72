"""The plugin's entry point (``[project.entry-points.genframe] vae = "genframe_vae.plugin"``).

genframe imports this module, finds the ``@hookimpl`` functions by name and calls
``genframe_register`` once at start-up; that is all it takes for ``genframe run vae`` to exist.
"""

from __future__ import annotations

from genframe import Recipe, hookimpl
from genframe_vae.config import VAEConfig
from genframe_vae.model import ConvVAE
from genframe_vae.sampler import PriorSampler
from genframe_vae.trainer import ELBOTrainer


class VAERecipe(Recipe):
    """What `genframe run vae` builds: the config model and the three components made from it."""

    name = "vae"
    description = "Variational autoencoder: conv encoder/decoder, Bernoulli pixels, ELBO, samples from the prior"
    config_class = VAEConfig

    def build_model(self, config: VAEConfig) -> ConvVAE:
        return ConvVAE.from_config(config.model)

    def build_sampler(self, config: VAEConfig) -> PriorSampler:
        return PriorSampler.from_config(config.model, config.sampler)

    def build_trainer(self, config: VAEConfig, model, sampler, device) -> ELBOTrainer:
        return ELBOTrainer(model, config, device)


@hookimpl
def genframe_register(registry) -> None:
    registry.add("recipe", VAERecipe.name, VAERecipe())
    # Listed by `genframe plugins`; other recipes could reuse them by name.
    registry.add("model", "conv_vae", ConvVAE)
