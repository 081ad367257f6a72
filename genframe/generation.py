"""Generating many samples: in chunks that fit the device, each chunk with its own seeded stream.

Used by ``genframe sample`` (progress bar, grid, tensor file), ``genframe eval`` and the evaluations
during training. A chunk that runs out of GPU memory is split in half and retried, so the default
chunk can be large enough to keep a GPU busy without knowing the model's memory needs in advance.
Samples depend on (seed, stream, chunk size): the same call gives the same images.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genframe.interfaces import SampleOutput, Sampler
from genframe.runsetup import seeded_generator

CPU_CHUNK = 500  # the native CPU sampler is already at its peak rate at a few hundred chains
GPU_CHUNK = 8192  # small nets need thousands of chains in flight to fill a GPU; halved on out-of-memory


def default_chunk(device: torch.device | str) -> int:
    return GPU_CHUNK if torch.device(device).type == "cuda" else CPU_CHUNK


def generate_in_chunks(
    sampler: Sampler,
    model: torch.nn.Module,
    n: int,
    steps: int | None,
    seed: int,
    stream: int,
    device: torch.device | str,
    chunk: int | None = None,
    progress: Callable[[int], None] | None = None,
    keep_every: int | None = None,
    keep_n: int = 64,
) -> SampleOutput:
    """``n`` samples from fresh chains, ``chunk`` at a time (default: by device), gathered on the CPU.

    ``progress(k)`` is called after each chunk with the number of samples it made. With
    ``keep_every``, the chain of the first chunk's first ``keep_n`` samples is kept (for GIFs).
    """
    chunk = chunk or default_chunk(device)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    images: list[torch.Tensor] = []
    chain: list[torch.Tensor] = []
    made, index = 0, 0
    while made < n:
        size = min(chunk, n - made)
        generator = seeded_generator(seed, stream * 1_000_003 + index, device)
        try:
            output = sampler.generate(model, size, steps=steps, generator=generator, device=device,
                                      keep_every=keep_every if index == 0 else None)
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise
            chunk = max(1, size // 2)  # this chunk again, smaller: same stream index, so still reproducible
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        images.append(output.images.detach().cpu())
        if index == 0 and keep_every:
            chain = [state[:keep_n].detach().cpu() for state in output.chain]
        made, index = made + size, index + 1
        if progress is not None:
            progress(size)
    return SampleOutput(torch.cat(images), chain)
