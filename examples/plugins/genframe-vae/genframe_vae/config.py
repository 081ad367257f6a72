"""Config of the ``vae`` recipe: the sections genframe gives every recipe, plus the VAE's own.

Each field's description is what `genframe config schema vae` shows; the defaults are a small conv
VAE that trains on MNIST in minutes on a CPU.
"""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from genframe import RecipeConfig, Section, TrainerConfig


class ConvVAEConfig(Section):
    in_channels: PositiveInt = Field(1, description="Image channels (1 for MNIST and Fashion-MNIST).")
    image_size: PositiveInt = Field(32, description="Image height and width; must halve cleanly through each conv.")
    channels: list[PositiveInt] = Field([32, 64, 128], description="Encoder conv widths (stride 2 each); "
                                                                   "the decoder mirrors them.")
    latent_dim: PositiveInt = Field(16, description="Size of the latent code z.")

    @model_validator(mode="after")
    def _size_halves_cleanly(self) -> ConvVAEConfig:
        # The decoder mirrors the encoder, so every stride-2 conv must halve the size exactly.
        if self.image_size % (2 ** len(self.channels)):
            raise ValueError(f"model.image_size {self.image_size} must be divisible by 2^{len(self.channels)} "
                             f"(one halving per entry of model.channels)")
        return self


class PriorSamplerConfig(Section):
    temperature: PositiveFloat = Field(
        1.0, description="Scale of the prior latents: z ~ N(0, temperature^2 I); below 1 trades variety for clarity."
    )


class ELBOTrainerConfig(TrainerConfig):
    epochs: PositiveInt = Field(10, description="Passes over the training data.")
    lr: PositiveFloat = Field(1e-3, description="Adam learning rate.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
    kl_weight: PositiveFloat = Field(
        1.0, description="Weight of the KL term in the loss (1 = the ELBO; the logged elbo is always unweighted)."
    )
    val_batch_size: PositiveInt = Field(1000, description="Batch size for validation.")


class VAEConfig(RecipeConfig):
    model: ConvVAEConfig = ConvVAEConfig()
    sampler: PriorSamplerConfig = PriorSamplerConfig()
    trainer: ELBOTrainerConfig = ELBOTrainerConfig()
