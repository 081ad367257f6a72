"""Config of the ``ebm`` recipe. Defaults are the reference recipe (Foster, Generative Deep Learning, ch. 7)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, model_validator

from genframe import RecipeConfig, Section, StepsOrShare, TrainerConfig, rate_schedule_problem


class EnergyNetConfig(Section):
    name: str = Field("swish_cnn", description="Registered model name.")
    in_channels: PositiveInt = Field(1, description="Image channels; follows the dataset unless set.")
    image_size: PositiveInt = Field(32, description="Image side in pixels; follows the dataset unless set.")
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
    step_size: PositiveFloat = Field(10.0, description="Multiplier of the clipped score gradient.")
    noise: float = Field(0.005, ge=0, description="Std of the Gaussian noise added before each step.")
    grad_clip: PositiveFloat = Field(0.03, description="Score gradients are clipped to +-grad_clip.")
    generate_steps: PositiveInt = Field(1000, description="Langevin steps when generating from uniform noise.")
    denoise_steps: PositiveInt = Field(
        100, description="Langevin steps when cleaning noisy images (genframe denoise). How many clean best depends "
        "on the step size: small steps need many, large ones a few, since more of them turn an image into another "
        "sample; see docs/using-the-energy.md (denoising).")
    impl: Literal["auto", "autograd", "fused", "native", "cudagraph"] = Field(
        "auto", description="SGLD implementation: auto = the fastest valid one (native on CPU for the Swish CNN, "
        "fused there without a C compiler, cudagraph on a CUDA GPU, autograd otherwise); autograd = reference "
        "loop, any model and device; fused = hand-written gradient in ATen ops, any device; native = the whole "
        "step as compiled C (CPU); cudagraph = blocks of reference steps replayed as CUDA graphs (GPU).")
    threads: PositiveInt | None = Field(
        None, description="CPU worker threads for the fast paths (chains split across them); default: torch's.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32", description="The convolutions' products in the native CPU kernel: fp32, or bf16 on a CPU with "
        "AVX-512 BF16 dot products (faster chains on some CPUs; chains, accumulators and the update stay fp32; a "
        "CPU without them, or another path, runs fp32 with one warning), or auto: bf16 only where a one-time race "
        "on this machine finds it 1.1x as fast as fp32, said in one line and kept in the run's checkpoint (a "
        "resume keeps it); see docs/performance.md (bf16 chains on CPU).")


class BufferConfig(Section):
    size: PositiveInt = Field(8192, description="Replay buffer capacity; the oldest samples fall out.")
    fresh_prob: float = Field(0.05, ge=0, le=1, description="Chance that a chain restarts from uniform noise.")


class EBMTrainerConfig(TrainerConfig):
    lr: PositiveFloat = Field(1e-4, description="Adam learning rate.")
    lr_decay_steps: StepsOrShare | None = Field(
        None, description="Cosine decay of the learning rate from lr to lr_min over this many steps, or this share "
        "of the run ('100%': the whole run, however long a budget makes it), then lr_min; default: a constant lr.")
    lr_min: float = Field(0.0, ge=0, description="The learning rate at the end of the cosine decay.")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field(
        (0.9, 0.999), description="Adam betas, each in [0, 1).")
    eps: PositiveFloat = Field(1e-7, description="Adam epsilon (Keras' default, as in the reference).")
    alpha: float = Field(0.1, ge=0, description="Weight of the score-magnitude regulariser.")
    real_noise: float = Field(0.005, ge=0, description="Std of the noise added to real images.")
    val_batch_size: PositiveInt = Field(1000, description="Batch size for validation.")
    r1: float = Field(
        0.0, ge=0, description="Weight gamma of a zero-centred gradient penalty on real images, "
        "gamma / 2 * mean ||d score / dx||^2 (R1, Mescheder et al. 2018): it pulls real images towards resting "
        "points of the Langevin flow, where otherwise chains pass through them; default 0: off.")
    r1_every: PositiveInt = Field(
        1, description="Apply the R1 penalty every this many steps, weighted by as many (lazy regularisation, "
        "Karras et al. 2020): its double backward pass is a large part of a short-chain step, so doing it less "
        "often saves most of that cost; see docs/performance.md (the R1 penalty).")
    score_limit: PositiveFloat = Field(
        1e4, description="A step whose |score| exceeds this counts as diverged (as do non-finite values)."
    )
    objective: Literal["cd", "matching"] = Field(
        "cd", description="How the energy learns: cd = contrastive divergence against Langevin chains; matching = "
        "its gradient fitted to a flow from noise to the data, no chains (energy matching, research/reports/"
        "energy-matching.md), "
        "for trainer.matching_steps, then contrastive divergence joins it to sharpen the energy near the data.")
    matching_steps: StepsOrShare = Field(
        "100%", description="objective = matching: steps, or a share of the run, of matching alone; contrastive "
        "divergence (the sharpening) joins it for the rest of the run.")
    matching_weight: float = Field(
        1.0, ge=0, description="objective = matching: the matching loss's weight beside contrastive divergence while "
        "sharpening (alone before that, it has weight 1).")
    matching_decay_from: float = Field(
        0.8, gt=0, lt=1, description="objective = matching: where on the path from noise (0) to data (1) the fitted "
        "gradient starts to shrink, linearly to nothing at the data, so that real images are its resting points.")
    matching_time: Literal["sampler"] | PositiveFloat = Field(
        1.0, description="objective = matching: the fit is of this times the score's gradient, so ascent steps of "
        "size h cross the path in matching_time / h steps; 'sampler' = sampler.steps x sampler.step_size, so the "
        "training chains' own Langevin steps cross it (a gradient, and score levels, on contrastive divergence's "
        "scale, for it to take over from).")
    coupling: Literal["independent", "ot"] = Field(
        "independent", description="objective = matching: how noise and data are paired on the paths: independently, "
        "or by a mini-batch optimal-transport plan (straighter paths that do not cross).")

    @model_validator(mode="after")
    def _decay_goes_down(self) -> EBMTrainerConfig:
        problem = rate_schedule_problem(self.lr, self.lr_min, self.lr_decay_steps)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _budget_times_the_steps_it_fits(self) -> EBMTrainerConfig:
        sharpens = self.matching_steps not in ("100%", "100.0%")
        if self.objective == "matching" and sharpens and self.budget_minutes is not None and self.max_steps is None:
            raise ValueError(f"trainer.budget_minutes times the run's first steps, which for objective = 'matching' "
                             f"draw no chains, so the length it fixes would not hold once contrastive divergence "
                             f"joins (trainer.matching_steps={self.matching_steps!r}); give trainer.max_steps, or "
                             "trainer.matching_steps='100%'")
        return self


class EBMConfig(RecipeConfig):
    model: EnergyNetConfig = EnergyNetConfig()
    sampler: SGLDConfig = SGLDConfig()
    buffer: BufferConfig = BufferConfig()
    trainer: EBMTrainerConfig = EBMTrainerConfig()
