"""The one interface every way of running SGLD chains implements, and the settings a choice is made for.

The sampler (sampler.py) is the step's arithmetic and its settings; a backend is how the chains are
computed for one model on one device: the sampler's own step with autograd's gradient (autograd.py), the
hand-written gradient in ATen ops (fused.py), the whole step as compiled C (native.py), or blocks of
steps captured as CUDA graphs (cudagraph.py). Which one runs is chosen once per model, device, image
shape and settings (select.py), never in the step. Every backend draws the Langevin noise from the
caller's generator as the reference loop does (the bf16 native kernels: one seed per call), so a seed
gives the same chain on each, to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from genframe import SampleOutput


class Chains(Protocol):
    """Runs chains with the weights it holds (a backend's ``bind``) or reads (the backend itself)."""

    def run(self, init: torch.Tensor, step_sizes: list[float], keep_every: int | None,
            generator: torch.Generator | None) -> SampleOutput:
        """``len(step_sizes)`` SGLD steps from ``init`` (not modified), step t with step size ``step_sizes[t]``,
        the noise drawn from ``generator``; with ``keep_every=k`` the chain holds the start and every k-th state."""


class ChainBackend(Chains, Protocol):
    """How SGLD chains of one model are computed on one device; ``run`` reads the model's weights then."""

    #: what ``SGLDSampler.implementation`` reports: autograd, fused, native, native-bf16 or cudagraph
    name: str

    def bind(self) -> Chains:
        """Chains with the model's weights read (and packed) now, for several short runs with the same
        weights (``SGLDSampler.refine`` takes one step at a time)."""


@dataclass(frozen=True)
class ChainSettings:
    """The sampler's settings a backend is chosen and built for (read at each call: they may change)."""

    impl: str  # sampler.impl: auto, autograd, fused, native or cudagraph
    precision: str  # sampler.precision: fp32 or bf16
    noise: float  # the Langevin noise's standard deviation
    grad_clip: float  # the gradient is clipped to +-grad_clip
    threads: int  # worker threads of the CPU backends
