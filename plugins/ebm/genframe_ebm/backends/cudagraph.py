"""The ``cudagraph`` backend: SGLD on a CUDA GPU as captured CUDA graphs, a block of steps per launch.

On a GPU this net is tiny: one SGLD step of a batch of 128 is about 50 small kernels, so an eager
loop is bound by kernel launches and Python, not arithmetic. A block of steps (noise, clamp, the
input gradient through autograd, clip, update, clamp) is captured once with ``torch.cuda.graph``
and replayed; no step reads anything back to the host.

Random numbers: the noise of each step is drawn outside the graph from the caller's generator, one
``randn`` per step into a static buffer, exactly as the eager loop draws it, so a chain from a seed
is the eager chain to float rounding. The step sizes of a block are a device tensor filled before
each replay, so one captured block serves every position of a chain and any step-size schedule.
Weights are read by address at replay: in-place optimiser updates are seen without a new capture.

If a capture or replay raises (a driver, a model or a torch build the graphs were never tried on), the
backend warns once and runs the reference loop (autograd.py) from then on, for every model of its sampler.

Run on an H200: 8x the eager loop at batch 128 (docs/performance.md); the CUDA tests in
tests/test_cudagraph.py pass there and skip without a GPU. ``block_plan`` is checked on CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from genframe import SampleOutput, one_line
from genframe_ebm.backends.autograd import AutogradChains, frozen

GRAPH_FAILURE_HINT = ("please report it to the genframe maintainers (the project's issue tracker) with the output "
                      "of `genframe plugins`; set sampler.impl=autograd to silence this")
MAX_BLOCK = 64  # steps per captured graph: a 1000-step generation replays a 64-step block 16 times
WARMUP_RUNS = 3  # eager runs on a side stream before capture, so autograd and cuDNN settle their kernels


def block_plan(steps: int, max_block: int = MAX_BLOCK) -> list[tuple[int, int]]:
    """(first step, length) of each block: full blocks, then one shorter remainder block."""
    return [(start, min(max_block, steps - start)) for start in range(0, steps, max_block)]


def sgld_block(model: nn.Module, x: torch.Tensor, noise: torch.Tensor, step_sizes: torch.Tensor,
               grad_clip: float) -> torch.Tensor:
    """``noise.shape[0]`` reference SGLD steps (the eager loop's arithmetic, step sizes from a tensor)."""
    for t in range(noise.shape[0]):
        x = (x + noise[t]).clamp_(-1.0, 1.0).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).sum(), x)
        x = x.detach().add_(grad.clamp_(-grad_clip, grad_clip) * step_sizes[t]).clamp_(-1.0, 1.0)
    return x


class GraphedBlock:
    """One captured block of ``length`` steps for chains of one shape on one device."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device,
                 length: int, grad_clip: float) -> None:
        self.model, self.grad_clip = model, grad_clip
        self.x = torch.zeros(shape, dtype=dtype, device=device)
        self.noise = torch.zeros((length, *shape), dtype=dtype, device=device)
        self.step_sizes = torch.zeros(length, dtype=dtype, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                sgld_block(model, self.x.clone(), self.noise, self.step_sizes, grad_clip)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.x.copy_(sgld_block(model, self.x, self.noise, self.step_sizes, grad_clip))

    def replay(self, step_sizes: list[float], noise_std: float, generator: torch.Generator | None) -> None:
        """Advance ``self.x`` by this block's steps; draws the block's noise first, one step at a time."""
        for t in range(self.noise.shape[0]):
            torch.randn(self.x.shape, generator=generator, dtype=self.x.dtype, device=self.x.device,
                        out=self.noise[t])
        self.noise.mul_(noise_std)
        self.step_sizes.copy_(torch.tensor(step_sizes, dtype=self.x.dtype), non_blocking=True)
        self.graph.replay()


class GraphedChains:
    """Captured blocks for one sampler, cached by (model, shape, dtype, device, block length); ``failure``:
    why graphs failed for this sampler, after which it never tries them again."""

    def __init__(self) -> None:
        self.blocks: dict[tuple, GraphedBlock] = {}
        self.failure: str | None = None

    def sample(self, model: nn.Module, init: torch.Tensor, step_sizes: list[float], noise_std: float,
               grad_clip: float, generator: torch.Generator | None) -> torch.Tensor:
        shape = tuple(init.shape)
        x = None
        for start, length in block_plan(len(step_sizes)):
            key = (id(model), shape, init.dtype, init.device, length, grad_clip)
            if key not in self.blocks:
                self.blocks[key] = GraphedBlock(model, shape, init.dtype, init.device, length, grad_clip)
            block = self.blocks[key]
            block.x.copy_(init if x is None else x)
            block.replay(step_sizes[start:start + length], noise_std, generator)
            x = block.x
        return init.detach().clone() if x is None else x.clone()

    def sample_or_none(self, model: nn.Module, init: torch.Tensor, step_sizes: list[float], noise_std: float,
                       grad_clip: float, generator: torch.Generator | None) -> torch.Tensor | None:
        """The chains' final states (``sample``), or None when graphs fail (now or before).

        A failure discards every captured graph (and its memory pool) and puts the generator back
        where it was, so the caller's eager run draws exactly the noise it would have drawn without
        graphs. Out-of-memory is raised as it is, not counted as a failure: the chunked generation
        retries a smaller chunk, for which graphs may well fit.
        """
        if self.failure is not None:
            return None
        rewind = rng_rewinder(generator, init.device)
        try:
            with frozen(model):
                return self.sample(model, init.detach(), step_sizes, noise_std, grad_clip, generator)
        except torch.cuda.OutOfMemoryError:
            self.blocks = {}
            rewind()
            raise
        except Exception as error:  # any capture or replay error; KeyboardInterrupt and the like pass through
            self.blocks = {}
            rewind()
            self.failure = shorten(f"{type(error).__name__}: {error}")
            warnings.warn(f"CUDA graph sampling failed ({self.failure}); sampling with the eager autograd "
                          f"loop instead (slower, same chains); {GRAPH_FAILURE_HINT}", UserWarning, stacklevel=4)
            return None


class GraphBackend:
    """The cudagraph backend for one model: its sampler's graphs, or the reference loop once they failed.
    Intermediate states (``keep_every``, for GIFs) are never asked of it: the sampler's choice gives those
    to the eager loop."""

    def __init__(self, graphs: GraphedChains, model: nn.Module, noise: float, grad_clip: float,
                 fallback: AutogradChains) -> None:
        self.graphs, self.model, self.noise, self.grad_clip, self.fallback = graphs, model, noise, grad_clip, fallback

    @property
    def name(self) -> str:
        return "autograd" if self.graphs.failure is not None else "cudagraph"

    def bind(self) -> GraphBackend:
        return self  # the graphs read the weights by address at each replay

    def run(self, init: torch.Tensor, step_sizes: list[float], keep_every: int | None,
            generator: torch.Generator | None) -> SampleOutput:
        images = self.graphs.sample_or_none(self.model, init, step_sizes, self.noise, self.grad_clip, generator)
        if images is not None:
            return SampleOutput(images, [])
        return self.fallback.run(init, step_sizes, keep_every, generator)  # what a GPU runs without graphs


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
