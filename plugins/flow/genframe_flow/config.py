"""Config of the ``flow`` recipe: a small U-Net, conditional flow matching, an ODE sampler."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from genframe import RecipeConfig, Section, StepsOrShare, TrainerConfig, rate_schedule_problem


class UNetConfig(Section):
    name: str = Field("unet", description="Registered model name.")
    in_channels: PositiveInt = Field(1, description="Image channels; follows the dataset unless set.")
    image_size: PositiveInt = Field(32, description="Image side in pixels; follows the dataset unless set.")
    channels: list[PositiveInt] = Field(
        [16, 32, 32], min_length=1, description="Width of each resolution level (the image halves between levels); "
        "[16, 32, 32] costs a CPU step like the EBM's, a GPU takes [64, 128, 128] or wider.")
    time_dim: PositiveInt = Field(64, multiple_of=2, description="Width of the time embedding (even: sines and "
                                  "cosines).")


class ODEConfig(Section):
    method: Literal["euler", "midpoint", "heun", "adaptive"] = Field(
        "midpoint", description="ODE solver from noise (t=0) to data (t=1): euler (1 evaluation a step), midpoint "
        "or heun (2; midpoint at NFE 20 scored as heun at NFE 40), adaptive (Dormand-Prince 5(4), "
        "error-controlled; reports the evaluations it used).")
    nfe: PositiveInt = Field(
        20, description="Function evaluations (net calls) per sample for euler, midpoint and heun; the adaptive "
        "solver stops with an error past 50 times this (at least 1000).")
    rtol: PositiveFloat = Field(1e-3, description="Relative tolerance of the adaptive solver.")
    atol: PositiveFloat = Field(1e-3, description="Absolute tolerance of the adaptive solver.")
    denoise_from: float = Field(
        0.6, gt=0, lt=1, description="genframe denoise: the path restarts at this time (0 noise, 1 data) from "
        "(1 - t) z + t x with fresh noise z and the noisy image x, and is integrated from there to t = 1.")
    likelihood_steps: PositiveInt = Field(
        20, description="Steps of the log-likelihood ODE (genframe score/ood), each with one Hutchinson probe.")


class FlowTrainerConfig(TrainerConfig):
    epochs: PositiveInt = Field(10, description="Passes over the training data.")
    batch_size: PositiveInt = 64
    lr: PositiveFloat = Field(2e-4, description="Adam learning rate (the peak, with a schedule).")
    warmup_steps: NonNegativeInt = Field(0, description="Raise the rate linearly from lr / warmup_steps to lr over "
                                         "this many first steps.")
    lr_decay_steps: StepsOrShare | None = Field(
        None, description="Cosine decay of the rate from lr (after the warm-up) to lr_min, ending this many steps "
        "into training, or this share of the run ('100%': at its end, however long a budget makes it), then "
        "lr_min. Default: a constant lr.")
    lr_min: NonNegativeFloat = Field(0.0, description="The rate at the end of the cosine decay.")
    grad_clip: PositiveFloat | None = Field(1.0, description="Clip the gradients' global norm to this (None: never).")
    time_sampling: Literal["uniform", "logit_normal"] = Field(
        "logit_normal", description="How training draws t: logit-normal (more weight mid-path; fd 27 against 37 "
        "for uniform in a 1500-step trial), or uniform on [0, 1].")
    coupling: Literal["independent", "ot"] = Field(
        "independent", description="Pairing of noise and data in a batch: independent, or mini-batch optimal "
        "transport (Sinkhorn plan, straighter paths, fewer sampler steps).")
    sigma_min: NonNegativeFloat = Field(0.0, description="Noise kept around the straight path (0: none).")

    @model_validator(mode="after")
    def _schedule_makes_sense(self) -> FlowTrainerConfig:
        problem = rate_schedule_problem(self.lr, self.lr_min, self.lr_decay_steps, self.warmup_steps)
        if problem:
            raise ValueError(problem)
        return self


class FlowConfig(RecipeConfig):
    model: UNetConfig = UNetConfig()
    sampler: ODEConfig = ODEConfig()
    trainer: FlowTrainerConfig = FlowTrainerConfig()
