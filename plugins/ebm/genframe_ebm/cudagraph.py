"""SGLD on a CUDA GPU as a captured CUDA graph: a block of Langevin steps replayed with one launch.

On a GPU this net is tiny: one SGLD step of a batch of 128 is about 50 small kernels, so an eager
loop is bound by kernel launches and Python, not arithmetic. A block of steps (noise, clamp, the
input gradient through autograd, clip, update, clamp) is captured once with ``torch.cuda.graph``
and replayed; no step reads anything back to the host.

Random numbers: the noise of each step is drawn outside the graph from the caller's generator, one
``randn`` per step into a static buffer, exactly as the eager loop draws it, so a chain from a seed
is the eager chain to float rounding. The step sizes of a block are a device tensor filled before
each replay, so one captured block serves every position of a chain and any step-size schedule.
Weights are read by address at replay: in-place optimiser updates are seen without a new capture.

Run on an H200: 8x the eager loop at batch 128 (docs/performance.md); the CUDA tests in
tests/test_cudagraph.py pass there and skip without a GPU. ``block_plan`` is checked on CPU.
"""

from __future__ import annotations

import torch
from torch import nn

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
    """Captured blocks for one sampler, cached by (model, shape, dtype, device, block length)."""

    def __init__(self) -> None:
        self.blocks: dict[tuple, GraphedBlock] = {}

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
