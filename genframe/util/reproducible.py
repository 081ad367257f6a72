"""Reproducible GPU kernels while genframe trains or samples: cuDNN's deterministic algorithms, scoped.

Some cuDNN convolution algorithms sum with atomic adds, in whatever order the threads finish. Two replays
of one chain from one seed then differ in the last bits, and Langevin chains (clipped, clamped, chaotic)
grow that into other images: on an H200 a resumed CUDA run did not match a straight one, nor did two
`genframe sample` calls with one seed. With deterministic algorithms they match bit for bit, as on the
CPU. What it costs is measured in benchmarks/sgld_cuda.py (docs/performance.md). Nothing changes on the CPU.

The setting is restored on exit, so a project that calls genframe keeps its own choice around the call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def reproducible_kernels() -> Iterator[None]:
    """cuDNN picks only deterministic algorithms (and does not autotune) inside the block."""
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved
