"""Config of the ``ebm`` recipe. Defaults are the reference recipe (Foster, Generative Deep Learning, ch. 7)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from genframe.config import RecipeConfig, Section, TrainerConfig


class EnergyNetConfig(Section):
    name: str = Field("swish_cnn", description="Registered model name.")
    in_channels: PositiveInt = 1
    image_size: PositiveInt = 32
    channels: list[PositiveInt] = Field([16, 32, 64, 64], description="Conv widths; each conv has stride 2.")
    kernel_sizes: list[PositiveInt] = Field([5, 3, 3, 3], description="Conv kernel sizes, one per conv.")
    hidden: PositiveInt = Field(64, description="Width of the dense layer before the score.")

    @model_validator(mode="after")
    def _one_kernel_per_conv(self) -> EnergyNetConfig:
        if len(self.channels) != len(self.kernel_sizes):
            raise ValueError(f"model.channels has {len(self.channels)} entries but model.kernel_sizes has "
                             f"{len(self.kernel_sizes)}; give one kernel size per conv")
        return self


class SGLDConfig(Section):
    steps: PositiveInt = Field(60, description="Langevin steps per training update.")
    steps_min: PositiveInt | None = Field(
        None, description="If set, each training update draws its number of Langevin steps uniformly from "
        "steps_min..steps, so the net cannot learn to depend on one exact chain length (generation still "
        "runs generate_steps).")
    step_size: PositiveFloat = Field(10.0, description="Multiplier of the clipped score gradient.")
    step_size_end: PositiveFloat | None = Field(
        None, description="Step size at a chain's last step; it moves geometrically from step_size "
        "(default: constant step_size).")
    noise: float = Field(0.005, ge=0, description="Std of the Gaussian noise added before each step.")
    grad_clip: PositiveFloat = Field(0.03, description="Score gradients are clipped to +-grad_clip.")
    generate_steps: PositiveInt = Field(1000, description="Langevin steps when generating from uniform noise.")
    impl: Literal["auto", "autograd", "fused", "native", "cudagraph"] = Field(
        "auto", description="SGLD implementation: auto = the fastest valid one (native on CPU for the Swish CNN, "
        "fused there without a C compiler, cudagraph on a CUDA GPU, autograd otherwise); autograd = reference "
        "loop, any model and device; fused = hand-written gradient in ATen ops, any device; native = the whole "
        "step as compiled C (CPU); cudagraph = blocks of reference steps replayed as CUDA graphs (GPU).")
    threads: PositiveInt | None = Field(
        None, description="CPU worker threads for the fast paths (chains split across them); default: torch's.")

    @model_validator(mode="after")
    def _steps_min_within_steps(self) -> SGLDConfig:
        if self.steps_min is not None and self.steps_min > self.steps:
            raise ValueError(f"sampler.steps_min={self.steps_min} is above sampler.steps={self.steps}; training "
                             "chains draw their length from steps_min..steps, so give steps_min <= steps")
        return self


class BufferConfig(Section):
    size: PositiveInt = Field(8192, description="Replay buffer capacity; the oldest samples fall out.")
    fresh_prob: float = Field(0.05, ge=0, le=1, description="Chance that a chain restarts from uniform noise.")


class EBMTrainerConfig(TrainerConfig):
    lr: PositiveFloat = Field(1e-4, description="Adam learning rate.")
    lr_decay_steps: PositiveInt | None = Field(
        None, description="Cosine decay of the learning rate from lr to lr_min over this many steps, then "
        "lr_min; default: a constant lr.")
    lr_min: float = Field(0.0, ge=0, description="The learning rate at the end of the cosine decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas.")
    eps: PositiveFloat = Field(1e-7, description="Adam epsilon (Keras' default, as in the reference).")
    alpha: float = Field(0.1, ge=0, description="Weight of the score-magnitude regulariser.")
    real_noise: float = Field(0.005, ge=0, description="Std of the noise added to real images.")
    val_batch_size: PositiveInt = Field(1000, description="Batch size for validation.")
    ema: float | None = Field(
        None, gt=0, lt=1, description="Sample and evaluate with an exponential moving average of the weights, "
        "updated after each step with this decay (e.g. 0.999); default: the trained weights themselves.")
    mixture: PositiveInt = Field(
        1, description="Sample and evaluate with an equal mixture of this many nets: the trained one and its "
        "last mixture - 1 snapshots, each chain following one member (genframe_ebm.mixture); default 1: the "
        "trained net alone.")
    mixture_every: PositiveInt = Field(500, description="Steps between the mixture's snapshots.")
    r1: float = Field(
        0.0, ge=0, description="Weight gamma of a zero-centred gradient penalty on real images, "
        "gamma / 2 * mean ||d score / dx||^2 (R1, Mescheder et al. 2018): it pulls real images towards resting "
        "points of the Langevin flow, where otherwise chains pass through them; default 0: off.")
    r1_min: float | None = Field(
        None, ge=0, description="With lr_decay_steps: the R1 weight follows the learning rate's cosine, from r1 "
        "down to r1_min (strong while the rate is high and quality swings, weak late when a strong penalty "
        "made runs collapse); default: a constant r1.")
    r1_every: PositiveInt = Field(
        1, description="Apply the R1 penalty every this many steps, weighted by as many (lazy regularisation, "
        "Karras et al. 2020): the double backward pass costs about a quarter of a fast-recipe step.")
    score_limit: PositiveFloat = Field(
        1e4, description="A step whose |score| exceeds this counts as diverged (as do non-finite values)."
    )
    cdiv_limit: PositiveFloat | None = Field(
        None, description="A step whose |cdiv| (mean chain score minus mean real score) exceeds this counts as "
        "diverged: the net tells every chain from real data, the collapse of short-run training; default: no limit.")
    cdiv_patience: PositiveInt = Field(
        1, description="Consecutive steps beyond cdiv_limit that count as diverged: 1 refuses the first such "
        "step; more lets one-step spikes, which heal by themselves, train on, and catches only a lasting collapse.")
    cdiv_settle: PositiveFloat | None = Field(
        None, description="While the running mean of cdiv (over about the last 50 steps) is beyond this, the "
        "routine checkpoint waits, as it does during a streak beyond cdiv_limit: a run sliding towards a collapse "
        "is not a state to roll back to; default: only a streak makes it wait.")

    @model_validator(mode="after")
    def _decay_goes_down(self) -> EBMTrainerConfig:
        if self.lr_decay_steps is not None and self.lr_min >= self.lr:
            raise ValueError(f"trainer.lr_min={self.lr_min:g} is not below trainer.lr={self.lr:g}; a decay "
                             "needs lr_min < lr (or drop trainer.lr_decay_steps for a constant rate)")
        return self

    @model_validator(mode="after")
    def _one_way_to_sample(self) -> EBMTrainerConfig:
        if self.mixture > 1 and self.ema is not None:
            raise ValueError(f"trainer.mixture={self.mixture} and trainer.ema={self.ema:g} are two ways to sample "
                             "with other weights than the trained ones; choose one (drop trainer.ema or set "
                             "trainer.mixture=1)")
        return self

    @model_validator(mode="after")
    def _r1_decay_needs_a_schedule(self) -> EBMTrainerConfig:
        if self.r1_min is None:
            return self
        if self.lr_decay_steps is None:
            raise ValueError(f"trainer.r1_min={self.r1_min:g} follows the learning-rate decay, which is off; "
                             "set trainer.lr_decay_steps (e.g. to trainer.max_steps) or drop trainer.r1_min")
        if self.r1_min > self.r1:
            raise ValueError(f"trainer.r1_min={self.r1_min:g} is above trainer.r1={self.r1:g}; the weight falls "
                             "from r1 to r1_min, so set r1_min <= r1")
        return self

    @model_validator(mode="after")
    def _settle_below_the_limit(self) -> EBMTrainerConfig:
        if self.cdiv_settle is None:
            return self
        if self.cdiv_limit is None:  # (and under torchrun only a limit's cdiv is averaged over all
            # processes' batches, as the running mean should be)
            raise ValueError(f"trainer.cdiv_settle={self.cdiv_settle:g} guards the rollback target of "
                             "trainer.cdiv_limit, which is off; set a limit (e.g. trainer.cdiv_limit=1) or drop "
                             "cdiv_settle")
        if self.cdiv_settle >= self.cdiv_limit:
            raise ValueError(f"trainer.cdiv_settle={self.cdiv_settle:g} is not below trainer.cdiv_limit="
                             f"{self.cdiv_limit:g}; a run is settled well inside the limit (e.g. cdiv_settle = "
                             "cdiv_limit / 10)")
        return self

    @model_validator(mode="after")
    def _patience_needs_a_limit(self) -> EBMTrainerConfig:
        if self.cdiv_patience > 1 and self.cdiv_limit is None:
            raise ValueError(f"trainer.cdiv_patience={self.cdiv_patience} has no effect without trainer.cdiv_limit; "
                             "set a limit (e.g. trainer.cdiv_limit=1) or drop the patience")
        return self


class EBMConfig(RecipeConfig):
    model: EnergyNetConfig = EnergyNetConfig()
    sampler: SGLDConfig = SGLDConfig()
    buffer: BufferConfig = BufferConfig()
    trainer: EBMTrainerConfig = EBMTrainerConfig()
