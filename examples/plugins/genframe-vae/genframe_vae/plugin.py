"""The plugin's entry point (``[project.entry-points.genframe] vae = "genframe_vae.plugin"``).

genframe imports this module, finds the ``@hookimpl`` functions by name and calls
``genframe_register`` once at start-up; that is all it takes for ``genframe run vae`` to exist.
It imports no torch: the builders import the model, sampler and trainer when a run asks for them, and
the model is registered by reference, so ``genframe plugins`` and ``genframe --help`` stay instant.
"""

from __future__ import annotations

from genframe import Recipe, hookimpl
from genframe_vae.config import VAEConfig


class VAERecipe(Recipe):
    """What `genframe run vae` builds: the config model and the three components made from it."""

    name = "vae"
    description = "Variational autoencoder: conv encoder/decoder, Bernoulli pixels, ELBO, samples from the prior"
    config_class = VAEConfig

    def metric_goals(self) -> dict[str, str]:
        # the loss is the negative ELBO: lower is better, as for the reconstruction term; the ELBO itself higher
        return {"loss": "min", "recon": "min", "elbo": "max", "val/recon": "min", "val/elbo": "max"}

    def build_model(self, config: VAEConfig):
        from genframe_vae.model import ConvVAE

        return ConvVAE.from_config(config.model)

    def build_sampler(self, config: VAEConfig):
        from genframe_vae.sampler import PriorSampler

        return PriorSampler.from_config(config.model, config.sampler)

    def build_trainer(self, config: VAEConfig, model, sampler, device):
        from genframe_vae.trainer import ELBOTrainer

        return ELBOTrainer(model, config, device)


@hookimpl
def genframe_register(registry) -> None:
    registry.add("recipe", VAERecipe.name, VAERecipe())
    # By reference ("module:Class"): imported when first used. Other recipes could reuse it by name.
    registry.add("model", "conv_vae", "genframe_vae.model:ConvVAE")
