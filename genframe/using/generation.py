"""Generating many samples: in chunks that fit the device, each chunk with its own seeded stream.

Used by ``genframe sample`` (progress bar, grid, tensor file; streamed chunk by chunk with
:func:`iter_chunks`, so its memory does not grow with the sample count), ``genframe eval`` and
the evaluations during training (all samples at once, :func:`generate_in_chunks`). A chunk that
runs out of GPU memory is split in half and retried, so the default chunk can be large enough to
keep a GPU busy without knowing the model's memory needs in advance.
Samples depend on (seed, stream, chunk size): the same call gives the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy
import numpy.lib.format as npy_format
import torch

from genframe.contracts.components import SampleOutput, Sampler
from genframe.training.runsetup import seeded_generator
from genframe.util.reproducible import reproducible_kernels

CPU_CHUNK = 500  # the native CPU sampler is already at its peak rate at a few hundred chains
GPU_CHUNK = 8192  # small nets need thousands of chains in flight to fill a GPU; halved on out-of-memory


def default_chunk(device: torch.device | str) -> int:
    return GPU_CHUNK if torch.device(device).type == "cuda" else CPU_CHUNK


def iter_chunks(
    sampler: Sampler,
    model: torch.nn.Module,
    n: int,
    steps: int | None,
    seed: int,
    stream: int,
    device: torch.device | str,
    chunk: int | None = None,
    keep_every: int | None = None,
    keep_n: int = 64,
) -> Iterator[SampleOutput]:
    """``n`` samples from fresh chains, yielded ``chunk`` at a time (default: by device), on the CPU.

    Nothing is kept between chunks, so memory does not depend on ``n``. With ``keep_every``, the
    first chunk carries the chain of its first ``keep_n`` samples (for GIFs); later chunks none.
    """
    chunk = chunk or default_chunk(device)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    made, index = 0, 0
    while made < n:
        size = min(chunk, n - made)
        generator = seeded_generator(seed, stream * 1_000_003 + index, device)
        try:
            with reproducible_kernels():  # one seed, one set of images, on a GPU too
                output = sampler.generate(model, size, steps=steps, generator=generator, device=device,
                                          keep_every=keep_every if index == 0 else None)
        except torch.cuda.OutOfMemoryError:
            if size == 1:
                raise
            chunk = max(1, size // 2)  # this chunk again, smaller: same stream index, so still reproducible
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        chain = [state[:keep_n].detach().cpu() for state in output.chain] if index == 0 and keep_every else []
        made, index = made + size, index + 1
        yield SampleOutput(output.images.detach().cpu(), chain, output.nfe)


def mean_nfe(counts: list[tuple[int | None, int]]) -> float | int | None:
    """The function evaluations a sample cost over chunks of (``SampleOutput.nfe``, samples): ``None`` where the
    sampler counts none; an adaptive solver's chunks may differ, so the mean over samples, whole where it is."""
    if not counts or any(nfe is None for nfe, _ in counts):
        return None
    mean = sum(nfe * size for nfe, size in counts) / sum(size for _, size in counts)
    return int(mean) if mean == int(mean) else round(mean, 1)


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
    """All ``n`` samples of :func:`iter_chunks` gathered in one CPU tensor (evaluations need them together).

    ``progress(k)`` is called after each chunk with the number of samples it made. With
    ``keep_every``, the chain of the first chunk's first ``keep_n`` samples is kept (for GIFs).
    """
    images: list[torch.Tensor] = []
    chain: list[torch.Tensor] = []
    counts: list[tuple[int | None, int]] = []
    for output in iter_chunks(sampler, model, n, steps, seed, stream, device, chunk, keep_every, keep_n):
        images.append(output.images)
        chain = chain or output.chain
        counts.append((output.nfe, output.images.shape[0]))
        if progress is not None:
            progress(output.images.shape[0])
    return SampleOutput(torch.cat(images), chain, mean_nfe(counts))


class NpyWriter:
    """Writes an (n, ...) array to an open binary file as NumPy's ``.npy`` format, one chunk at a time.

    The header (dtype and the full shape) goes first, with the first chunk; each chunk's bytes follow.
    The file is a plain .npy: ``numpy.load(path, mmap_mode="r")`` reads it without loading it whole.
    """

    def __init__(self, handle: BinaryIO, n: int) -> None:
        self.handle, self.n, self.written = handle, n, 0
        self.dtype: numpy.dtype | None = None

    def append(self, samples: torch.Tensor) -> None:
        """Write the next rows; the first call fixes the dtype and the example shape."""
        if samples.dtype == torch.bfloat16:  # NumPy has no bfloat16
            samples = samples.float()
        array = samples.detach().cpu().numpy()
        if self.dtype is None:
            self.dtype = array.dtype.newbyteorder("<")
            self.shape = array.shape[1:]
            npy_format.write_array_header_1_0(
                self.handle, {"descr": npy_format.dtype_to_descr(self.dtype), "fortran_order": False,
                              "shape": (self.n, *self.shape)})
        if array.shape[1:] != self.shape or self.written + array.shape[0] > self.n:
            raise ValueError(f"chunk of shape {array.shape} does not fit an array of shape {(self.n, *self.shape)} "
                             f"after {self.written} rows")
        self.handle.write(numpy.ascontiguousarray(array, dtype=self.dtype).data)
        self.written += array.shape[0]

    def close(self) -> None:
        """Check that every row the header promised was written (the file would not load otherwise)."""
        if self.written != self.n:
            raise ValueError(f"wrote {self.written} of the {self.n} rows the .npy header promises")
