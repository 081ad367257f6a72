"""Config of the ``toy2d`` recipe: genframe's sections plus the net, the Langevin sampler and the trainer.

The defaults train on ``ring8`` in seconds on a CPU (`genframe run toy2d`); each field's description
is what `genframe config schema toy2d` shows.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from genframe import RecipeConfig, Section, TrainerConfig
from genframe import DataConfig, LoggingConfig


# Sections whose defaults differ from the core's are subclasses, not instances with other values: a
# partial section in a file or a --set (say data.limit=64) is built from the class, with its defaults.
class Ring8DataConfig(DataConfig):
    name: str = Field("ring8", description="Registered dataset name (the toy2d metric knows ring8).")


class Toy2DLoggingConfig(LoggingConfig):
    # A scatter of 64 points says little: previews and the final animation show more.
    sample_n: int = Field(512, ge=0, description="Points in each preview picture (0: no previews).")
    chain_n: int = Field(256, ge=0, description="Chains in the final animation (0: none).")


class MLPConfig(Section):
    hidden: list[PositiveInt] = Field([64, 64], description="Widths of the hidden layers (SiLU after each).")


class LangevinConfig(Section):
    steps: NonNegativeInt = Field(40, description="Langevin steps per training update (chains start from noise).")
    generate_steps: NonNegativeInt = Field(40, description="Langevin steps when generating (sample, eval, pictures).")
    step_size: PositiveFloat = Field(0.01, description="Gradient step: x += step_size * d score / dx + noise * N(0, I).")
    noise: NonNegativeFloat = Field(
        0.05, description="Standard deviation of the noise added at each step (lower: sharper modes).")
    box: PositiveFloat = Field(3.0, description="Chains start uniform in [-box, box]^2 and stay inside it.")


class CDTrainerConfig(TrainerConfig):
    epochs: PositiveInt = Field(15, description="Passes over the training data.")
    batch_size: PositiveInt = 256
    lr: PositiveFloat = Field(1e-2, description="Adam learning rate.")
    alpha: NonNegativeFloat = Field(0.1, description="Weight of the score regulariser mean(real^2 + fake^2).")


class Toy2DConfig(RecipeConfig):
    data: Ring8DataConfig = Ring8DataConfig()
    model: MLPConfig = MLPConfig()
    sampler: LangevinConfig = LangevinConfig()
    trainer: CDTrainerConfig = CDTrainerConfig()
    logging: Toy2DLoggingConfig = Toy2DLoggingConfig()

    # best.pt follows this recipe's own quality metric (lower is better), not the image classifier's fd
    callback_settings: ClassVar[dict[str, dict[str, Any]]] = {"keep_best": {"metric": "eval/energy_distance"}}
