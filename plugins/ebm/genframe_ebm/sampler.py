"""SGLD (Langevin dynamics) sampler: noisy gradient ascent on the score with clipping and clamping.

Each step, exactly as the reference: x += N(0, noise); clamp to [-1, 1]; g = d score / dx;
clip g to +-grad_clip; x += step_size * g; clamp to [-1, 1]. Model weights are frozen while
sampling, so only the input gradient is computed.

Implementations (``impl``), all drawing the same noise from the same generator:
- ``autograd``: the reference loop with ``torch.autograd.grad``; right for any nn.Module, any device.
- ``fused``: the Swish CNN's gradient written out by hand (swish_plan.py), chains split across
  worker threads on CPU (fastpath.py); any device.
- ``native``: the whole step (forward, input gradient, update) as one C function generated for the
  net's shape and compiled on first use (native_src.py, native.py), chains split across threads; CPU only.
- ``cudagraph``: on a CUDA GPU, blocks of reference steps captured as CUDA graphs and replayed
  (cudagraph.py); any model. If a capture or replay raises (a driver, a model or a torch build the
  graphs were never tried on), the sampler warns once and runs the ``autograd`` loop from then on.
- ``auto`` (default): on CPU for a SwishEnergyNet, ``native`` or ``fused``, whichever a one-time race
  on this machine found faster (calibrate.py; ``fused`` when the kernels do not build); ``cudagraph``
  on a CUDA GPU; ``autograd`` otherwise.
The fast paths agree with the reference loop to float rounding (tests/test_sampler_fast.py).

``precision = "bf16"`` makes the native kernel's convolutions bf16 dot products on a CPU with AVX-512 BF16
(native_bf16_src.py): about 2x the chains' speed, within bf16's rounding of the fp32 gradient, and with
noise the kernel draws itself from one generator draw per call (tests/test_sampler_bf16.py). Elsewhere
(another CPU, another path) the chains run fp32 and the sampler says so once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from genframe import ConfigError, SampleOutput, Sampler, one_line
from genframe_ebm import calibrate, native
from genframe_ebm.cudagraph import GraphedChains
from genframe_ebm.fastpath import FastChains, main_thread_alone, worker_count
from genframe_ebm.swish_plan import SwishPlan

IMPLS = ("auto", "autograd", "fused", "native", "cudagraph")
PRECISIONS = ("fp32", "bf16")
GRAPH_FAILURE_HINT = ("please report it to the genframe maintainers (the project's issue tracker) with the output "
                      "of `genframe plugins`; set sampler.impl=autograd to silence this")


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Turn off weight gradients (and restore them afterwards): sampling needs only d score / dx."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad():  # callers may sample under torch.no_grad()
            yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


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
        self.impl, self.threads, self.precision = impl, threads, precision
        self.graphs = GraphedChains()  # captured CUDA graphs, reused across calls of the same shape
        self.graph_failure: str | None = None  # why graphs failed here once; then this sampler never tries again

    @classmethod
    def from_config(cls, config, example_shape: Sequence[int]) -> SGLDSampler:
        return cls(config.step_size, config.noise, config.grad_clip, config.steps, config.generate_steps, example_shape,
                   impl=config.impl, threads=config.threads, denoise_steps=config.denoise_steps,
                   precision=config.precision)

    def init_state(self, n, device="cpu", generator=None) -> torch.Tensor:
        """Uniform noise in [-1, 1]."""
        return torch.rand((n, *self.example_shape), generator=generator, device=device) * 2 - 1

    def step_sizes(self, steps: int) -> list[float]:
        """The step size of each of a chain's ``steps`` steps (constant; the fast paths take a list)."""
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
        if callable(chain_members):  # a mixture: each member runs its own share of the chains, on its fast path
            members = chain_members(init.shape[0])
            shares = init.split([count for _, count in members])
            outputs = [self.sample(member, share, steps, keep_every, generator)
                       for (member, _), share in zip(members, shares) if share.shape[0]]
            chain = [torch.cat(frames) for frames in zip(*(output.chain for output in outputs))]
            return SampleOutput(torch.cat([output.images for output in outputs]), chain)
        if self.uses_cuda_graph(model, init, keep_every):
            self.tell_if_fp32("cudagraph")
            images = self.graph_sample(model, init, steps, generator)
            if images is not None:
                return SampleOutput(images, [])
            return self.reference_sample(model, init, steps, keep_every, generator)  # what a GPU runs without graphs
        threads = self.worker_threads()  # read before main_thread_alone sets torch's count to 1
        with main_thread_alone(worker_count(init, threads)):
            fast = self.fast_chains(model, init, threads)
            if fast is not None:
                return fast.sample(init, self.step_sizes(steps), keep_every, generator, threads)
        self.tell_if_fp32("autograd")
        return self.reference_sample(model, init, steps, keep_every, generator)

    def tell_if_fp32(self, path: str) -> None:
        """With precision bf16, say once that this path (not the native CPU kernel) runs fp32."""
        if self.precision == "bf16":
            tell_once_of_fp32(f"the bf16 products exist only in the native CPU kernel; these chains run the {path} path")

    def refine(self, model, images, known=None, steps=None, generator=None) -> torch.Tensor:
        """``steps`` Langevin steps from ``images`` (default: the generation steps; with nothing held, the denoising
        steps), the ``known`` pixels put back after each step (within a step they take its noise, std ``noise``,
        like every pixel), on whichever path ``sample`` takes: the native C kernel on CPU, CUDA graphs on a GPU."""
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
        the fast path's plan and packed weights) done once here rather than at every step."""
        chain_members = getattr(model, "chain_members", None)
        if callable(chain_members):
            members = [(member, count) for member, count in chain_members(x.shape[0]) if count]  # as sample splits
            counts = [count for _, count in members]
            steps = [self.one_step(member, share) for (member, _), share in zip(members, x.split(counts))]
            return lambda x, generator: torch.cat([step(share, generator) for step, share in zip(steps, x.split(counts))])
        fast = None if self.uses_cuda_graph(model, x) else self.fast_chains(model, x)
        if fast is None:
            return lambda x, generator: self.sample(model, x, 1, generator=generator).images
        sizes, threads = self.step_sizes(1), self.worker_threads()
        return lambda x, generator: fast.sample(x, sizes, None, generator, threads).images

    def graph_sample(self, model: nn.Module, init: torch.Tensor, steps: int,
                     generator: torch.Generator | None) -> torch.Tensor | None:
        """The chains' final states through CUDA graphs, or None when graphs fail (now or before).

        A failure discards every captured graph (and its memory pool) and puts the generator back
        where it was, so the caller's eager run draws exactly the noise it would have drawn without
        graphs. Out-of-memory is raised as it is, not counted as a failure: the chunked generation
        retries a smaller chunk, for which graphs may well fit.
        """
        if self.graph_failure is not None:
            return None
        rewind = rng_rewinder(generator, init.device)
        try:
            with frozen(model):
                return self.graphs.sample(model, init.detach(), self.step_sizes(steps), self.noise, self.grad_clip,
                                          generator)
        except torch.cuda.OutOfMemoryError:
            self.graphs = GraphedChains()
            rewind()
            raise
        except Exception as error:  # any capture or replay error; KeyboardInterrupt and the like pass through
            self.graphs = GraphedChains()
            rewind()
            self.graph_failure = shorten(f"{type(error).__name__}: {error}")
            warnings.warn(f"CUDA graph sampling failed ({self.graph_failure}); sampling with the eager autograd "
                          f"loop instead (slower, same chains); {GRAPH_FAILURE_HINT}", UserWarning, stacklevel=2)
            return None

    def reference_sample(self, model: nn.Module, init: torch.Tensor, steps: int, keep_every: int | None,
                         generator: torch.Generator | None) -> SampleOutput:
        """The reference loop (``impl='autograd'``): any model, any device."""
        x = init.detach()
        chain = [x.clone()] if keep_every else []
        with frozen(model):
            for index, step_size in enumerate(self.step_sizes(steps)):
                x = self.step(model, x, generator, step_size)
                if keep_every and (index + 1) % keep_every == 0:
                    chain.append(x.clone())
        return SampleOutput(x, chain)

    def uses_cuda_graph(self, model: nn.Module, init: torch.Tensor, keep_every: int | None = None) -> bool:
        """CUDA graphs for chains on a GPU (``auto`` or ``cudagraph``), except when intermediate states
        are kept (GIFs), which the eager loop records."""
        if self.impl not in ("auto", "cudagraph") or init.device.type != "cuda":
            if self.impl == "cudagraph":
                raise ConfigError("sampler.impl='cudagraph' needs a CUDA GPU; use impl='auto' to pick by device")
            return False
        return keep_every is None

    def implementation(self, model: nn.Module, init: torch.Tensor) -> str:
        """Which implementation ``sample`` runs for this model and input: cudagraph, autograd, fused, native or
        native-bf16 (the native kernel with bf16 products)."""
        if self.uses_cuda_graph(model, init):
            return "autograd" if self.graph_failure is not None else "cudagraph"
        fast = self.fast_chains(model, init)
        if fast is None or fast.kernels is None:
            return "autograd" if fast is None else "fused"
        return "native" if fast.kernels.spec.precision == "fp32" else f"native-{fast.kernels.spec.precision}"

    def worker_threads(self) -> int:
        """Chain workers on the CPU fast paths: ``threads``, or torch's thread count."""
        return self.threads or torch.get_num_threads()

    def fast_chains(self, model: nn.Module, init: torch.Tensor, threads: int | None = None) -> FastChains | None:
        """The fast path for this call (weights read now), or None for the autograd loop; ``threads``: the
        workers it will run on (default: ``worker_threads()``), for ``auto``'s race."""
        if self.impl == "autograd":
            return None
        plan = SwishPlan.for_model(model, tuple(init.shape[1:])) if init.dtype == torch.float32 else None
        if plan is None:
            if self.impl != "auto":
                raise ConfigError(f"sampler.impl={self.impl!r} needs a SwishEnergyNet (plain Conv2d/SiLU layers, "
                                 f"no hooks, float32) and float32 images; got {type(model).__name__} with "
                                 f"{init.dtype} images. Use impl='auto' or 'autograd' for other models.")
            return None
        on_cpu = init.device.type == "cpu" and all(p.device.type == "cpu" for p in model.parameters())
        if self.impl == "auto" and not on_cpu:
            return None  # on a GPU, auto means CUDA graphs (or this loop, when chain states are kept)
        kernels = None
        if self.impl in ("auto", "native"):
            spec = plan.native_spec()
            if not on_cpu or spec is None:
                if self.impl == "native":
                    raise ConfigError("sampler.impl='native' runs on CPU only, for one-channel images of 32, 64... "
                                     "pixels and stride-2 convs with padding kernel // 2, odd kernels, multiples "
                                     "of 16 channels and hidden units")
                if on_cpu:
                    tell_once_of_the_slower_path(tuple(init.shape[1:]))
            else:
                kernels = self.bf16_kernels(plan) if self.precision == "bf16" else None
                kernels = kernels or native.load(spec, required=self.impl == "native")
            if self.impl == "auto" and kernels is not None:
                faster = calibrate.native_is_faster(plan, kernels, threads or self.worker_threads(), self.grad_clip)
                kernels = kernels if faster else None
        if kernels is None:
            self.tell_if_fp32("fused")
        precision = kernels.spec.precision if kernels is not None else "fp32"
        return FastChains(plan, plan.weights(native=kernels is not None, precision=precision), kernels, self.noise,
                          self.grad_clip)

    @staticmethod
    def bf16_kernels(plan: SwishPlan) -> native.NativeKernels | None:
        """The native kernels with bf16 products, or None (said once) where the CPU or compiler cannot."""
        reason = native.why_no_bf16()
        if reason:
            tell_once_of_fp32(reason)
            return None
        spec = plan.native_spec("bf16")
        kernels = native.load(spec, quiet=True)
        if kernels is None:
            tell_once_of_fp32(f"the bf16 kernel did not build ({native.why_unavailable(spec)})")
        return kernels


# Measured here (2-core AMD EPYC, AVX-512; docs/performance.md "Other image shapes"): on 1x32x32 images at
# batch 128 the ATen path ran this many times slower than the native kernel.
ATEN_VS_NATIVE = 2.8
_told: set[tuple[int, ...]] = set()


def tell_once_of_the_slower_path(shape: tuple[int, ...]) -> None:
    """Say once per image shape that the CPU chains run the ATen path, and what that costs."""
    if shape in _told:
        return
    _told.add(shape)
    warnings.warn(f"genframe: sampler: {'x'.join(map(str, shape))} images run the ATen path (sampler.impl "
                  "'fused'), not the native C kernel, which covers one-channel images of 32, 64, ... pixels and nets "
                  "whose widths are multiples of 16; "
                  f"where both run it measured {ATEN_VS_NATIVE}x slower (docs/performance.md, 'Other image "
                  "shapes')", UserWarning, stacklevel=4)


_told_fp32: set[str] = set()


def tell_once_of_fp32(reason: str) -> None:
    """Say once per reason that sampler.precision='bf16' runs fp32 here, and why."""
    if reason not in _told_fp32:
        _told_fp32.add(reason)
        warnings.warn(f"genframe: sampler.precision='bf16' runs fp32 here: {reason}", UserWarning, stacklevel=4)


def rng_rewinder(generator: torch.Generator | None, device: torch.device) -> Callable[[], None]:
    """A function that puts ``generator`` (None: torch's default one for ``device``) back to its state now."""
    if generator is not None:
        state = generator.get_state()
        return lambda: generator.set_state(state)
    if device.type == "cuda":
        state = torch.cuda.get_rng_state(device)
        return lambda: torch.cuda.set_rng_state(state, device)
    state = torch.get_rng_state()
    return lambda: torch.set_rng_state(state)


def shorten(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters (CUDA errors can run to pages)."""
    text = one_line(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."
