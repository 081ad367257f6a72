"""SGLD (Langevin dynamics) sampler: noisy gradient ascent on the score with clipping and clamping.

Each step, exactly as the reference: x += N(0, noise); clamp to [-1, 1]; g = d score / dx;
clip g to +-grad_clip; x += step_size * g; clamp to [-1, 1]. Model weights are frozen while
sampling, so only the input gradient is computed.

The sampler is that step and its settings. How the chains are computed for a model on a device is a
backend (genframe_ebm.backends: autograd, fused, native fp32/bf16, CUDA graphs), chosen once per model,
device, image shape and settings by ``sampler.impl`` and ``sampler.precision`` (backends/select.py), all
drawing the same noise from the same generator. The backends agree with this step's loop to float
rounding (tests/test_sampler_fast.py); ``precision = "bf16"``: within bf16's rounding, with noise the
kernel draws itself (tests/test_sampler_bf16.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from genframe import ConfigError, SampleOutput, Sampler, usable_cores
from genframe_ebm.backends.autograd import frozen
from genframe_ebm.backends.base import ChainBackend, ChainSettings
from genframe_ebm.backends.select import IMPLS, PRECISIONS, Backends

__all__ = ["IMPLS", "PRECISIONS", "SGLDSampler", "frozen"]


class SGLDSampler(Sampler):
    """Langevin sampler over images in [-1, 1]; ``steps`` is the training default."""

    def __init__(
        self,
        step_size: float = 10.0,
        noise: float = 0.005,
        grad_clip: float = 0.03,
        steps: int = 60,
        generate_steps: int = 1000,
        example_shape: Sequence[int] = (1, 32, 32),
        impl: str = "auto",
        threads: int | None = None,
        denoise_steps: int = 2,
        precision: str = "fp32",
    ) -> None:
        if impl not in IMPLS:
            raise ConfigError(f"sampler impl must be one of {', '.join(IMPLS)}, not {impl!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"sampler precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.step_size, self.noise, self.grad_clip = step_size, noise, grad_clip
        self.steps, self.generate_steps, self.denoise_steps = steps, generate_steps, denoise_steps
        self.example_shape = tuple(example_shape)
        cores = usable_cores()
        if threads is not None and threads > cores:
            warnings.warn(f"genframe: sampler.threads={threads} is more than the {cores} CPU cores this process may "
                          f"use; workers beyond them only take turns, so the chains run on {cores}", UserWarning,
                          stacklevel=3)
            threads = cores
        self.impl, self.threads, self.precision = impl, threads, precision
        self.backends = Backends(self.step)  # the choice per model, and the CUDA graphs captured for them

    @classmethod
    def from_config(cls, config, example_shape: Sequence[int]) -> SGLDSampler:
        return cls(config.step_size, config.noise, config.grad_clip, config.steps, config.generate_steps, example_shape,
                   impl=config.impl, threads=config.threads, denoise_steps=config.denoise_steps,
                   precision=config.precision)

    def init_state(self, n, device="cpu", generator=None) -> torch.Tensor:
        """Uniform noise in [-1, 1]."""
        return torch.rand((n, *self.example_shape), generator=generator, device=device) * 2 - 1

    def step_sizes(self, steps: int) -> list[float]:
        """The step size of each of a chain's ``steps`` steps (constant; the backends take a list)."""
        return [self.step_size] * steps

    def step(self, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None,
             step_size: float | None = None) -> torch.Tensor:
        """One Langevin step from ``x`` (not modified); weights must already be frozen."""
        step_size = self.step_size if step_size is None else step_size
        x = x + self.noise * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x.clamp_(-1.0, 1.0).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).sum(), x)
        return x.detach().add_(grad.clamp_(-self.grad_clip, self.grad_clip), alpha=step_size).clamp_(-1.0, 1.0)

    def sample(self, model, init, steps=None, keep_every=None, generator=None) -> SampleOutput:
        """Run ``steps`` (default: the training steps) Langevin steps from ``init``.

        With ``keep_every=k`` the chain holds the start and every k-th state (for GIFs).
        """
        steps = self.steps if steps is None else steps
        chain_members = getattr(model, "chain_members", None)
        if callable(chain_members):  # a mixture: each member runs its own share of the chains, on its own backend
            members = chain_members(init.shape[0])
            shares = init.split([count for _, count in members])
            outputs = [self.sample(member, share, steps, keep_every, generator)
                       for (member, _), share in zip(members, shares) if share.shape[0]]
            chain = [torch.cat(frames) for frames in zip(*(output.chain for output in outputs))]
            return SampleOutput(torch.cat([output.images for output in outputs]), chain)
        return self.backend(model, init, keep_every).run(init, self.step_sizes(steps), keep_every, generator)

    def refine(self, model, images, known=None, steps=None, generator=None) -> torch.Tensor:
        """``steps`` Langevin steps from ``images`` (default: the generation steps; with nothing held, the denoising
        steps), the ``known`` pixels put back after each step (within a step they take its noise, std ``noise``,
        like every pixel), on whichever backend ``sample`` takes: the native C kernel on CPU, CUDA graphs on a GPU."""
        if known is None:
            steps = self.denoise_steps if steps is None else steps
            return self.sample(model, images, steps, generator=generator).images
        steps = self.generate_steps if steps is None else steps
        values, known = images.detach(), known.to(images.device).expand_as(images)
        step = self.one_step(model, values)
        x = values
        for _ in range(steps):
            x = torch.where(known, values, step(x, generator))
        return x

    def one_step(self, model: nn.Module, x: torch.Tensor) -> Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]:
        """A function making one step of ``sample(model, x, 1)`` (the same draws), its set-up (a mixture's split,
        the backend's choice and packed weights) done once here rather than at every step."""
        chain_members = getattr(model, "chain_members", None)
        if callable(chain_members):
            members = [(member, count) for member, count in chain_members(x.shape[0]) if count]  # as sample splits
            counts = [count for _, count in members]
            steps = [self.one_step(member, share) for (member, _), share in zip(members, x.split(counts))]
            return lambda x, generator: torch.cat([step(share, generator) for step, share in zip(steps, x.split(counts))])
        chains, sizes = self.backend(model, x).bind(), self.step_sizes(1)
        return lambda x, generator: chains.run(x, sizes, None, generator).images

    def backend(self, model: nn.Module, init: torch.Tensor, keep_every: int | None = None) -> ChainBackend:
        """The backend that runs chains of ``model`` from states like ``init`` (chosen once, then kept)."""
        settings = ChainSettings(self.impl, self.precision, self.noise, self.grad_clip, self.worker_threads())
        return self.backends.choose(model, init, keep_every, settings)

    def implementation(self, model: nn.Module, init: torch.Tensor) -> str:
        """Which backend ``sample`` runs for this model and input: cudagraph, autograd, fused, native or
        native-bf16 (the native kernel with bf16 products)."""
        return self.backend(model, init).name

    @property
    def chosen_precision(self) -> dict | None:
        """What ``precision = "auto"`` took for this sampler's chains, why, and the race's speed-up (None until
        it has chosen, or where it never chooses: another backend, another precision)."""
        choice = self.backends.precision_choice
        return None if choice is None else choice.as_dict()

    def worker_threads(self) -> int:
        """Chain workers on the CPU backends: ``threads``, or torch's thread count."""
        return self.threads or torch.get_num_threads()
