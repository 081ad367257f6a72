"""Which backend runs a sampler's chains: chosen once per model, device, image shape and settings, and kept.

``sampler.impl``:
- ``autograd``: the reference loop (autograd.py); any model, any device.
- ``fused``: the Swish CNN's gradient by hand in ATen ops (fused.py); any device.
- ``native``: the whole step as C compiled for the net's shape (native.py); CPU only.
- ``cudagraph``: blocks of reference steps replayed as CUDA graphs (cudagraph.py); any model, a CUDA GPU.
- ``auto`` (default): on CPU for a SwishEnergyNet, ``native`` or ``fused``, whichever a one-time race on
  this machine found faster (race.py; ``fused`` when the kernels do not build); ``cudagraph`` on a CUDA
  GPU (the eager loop when chain states are kept, for GIFs); ``autograd`` otherwise.
``sampler.precision = "bf16"`` asks for the native kernel's bf16 products; elsewhere (another CPU, another
backend) the chains run fp32 and this says so once. ``precision = "auto"`` takes bf16 only where a one-time
race on this machine found the bf16 kernel at least ``BF16_MARGIN`` times as fast as the fp32 one (race.py),
says its choice once, and leaves it on the sampler (``SGLDSampler.chosen_precision``) for the run to record.

A choice depends on the model (its layers, their hooks, its parameters' dtypes and devices: what the
network plan reads), the chains' device, dtype and image shape, and the settings; a model changed in
any of these is chosen for anew. The weights themselves are read at each run: training changes them.
"""

from __future__ import annotations

import os
import sys
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from genframe import ConfigError
from genframe_ebm.backends import native, race
from genframe_ebm.backends.autograd import AutogradChains, Step
from genframe_ebm.backends.base import ChainBackend, ChainSettings
from genframe_ebm.backends.cudagraph import GraphBackend, GraphedChains
from genframe_ebm.backends.fused import fused_backend
from genframe_ebm.backends.swish_plan import SwishPlan, has_hooks
from genframe_ebm.backends.threaded import main_thread_alone, worker_count

IMPLS = ("auto", "autograd", "fused", "native", "cudagraph")
PRECISIONS = ("auto", "fp32", "bf16")
# bf16 products round the chains' gradients (and cost stability on some seeds: issue 48), so auto takes them
# only for a clear gain, not for a tie within the race's noise
BF16_MARGIN = 1.1
MAX_KEPT = 32  # choices kept per sampler: its models (a mixture's members, an average) and settings; the oldest go


class Backends:
    """One sampler's backends: the choice for each model (and device, shape, settings), and its CUDA graphs,
    shared by its models (graphs that failed once are not tried again)."""

    def __init__(self, step: Step) -> None:
        self.step = step  # the sampler's step, the autograd backend's loop
        self.graphs = GraphedChains()
        self._chosen: dict[tuple, tuple[weakref.ref, ChainBackend]] = {}
        self.precision_choice: PrecisionChoice | None = None  # what precision "auto" took, once it has chosen

    def choose(self, model: nn.Module, init: torch.Tensor, keep_every: int | None,
               settings: ChainSettings) -> ChainBackend:
        """The backend for chains of ``model`` like ``init`` (``keep_every``: whether states are kept)."""
        graphs = uses_cuda_graph(settings.impl, init, keep_every)
        key = (id(model), model_signature(model), init.device, init.dtype, tuple(init.shape[1:]), graphs, settings)
        kept = self._chosen.get(key)
        if kept is not None and kept[0]() is model:
            return kept[1]
        backend = self._choose(model, init, graphs, settings)
        self._chosen = {k: v for k, v in self._chosen.items() if v[0]() is not None}  # forget models gone
        while len(self._chosen) >= MAX_KEPT:  # and models a long-lived sampler saw once (a backend may hold one)
            del self._chosen[next(iter(self._chosen))]
        self._chosen[key] = (weakref.ref(model), backend)
        return backend

    def _choose(self, model: nn.Module, init: torch.Tensor, graphs: bool, settings: ChainSettings) -> ChainBackend:
        reference = AutogradChains(model, self.step)
        if graphs:
            tell_if_fp32(settings, "cudagraph")
            return GraphBackend(self.graphs, model, settings.noise, settings.grad_clip, reference)
        backend = plan_backend(model, init, settings, self.chose_precision)
        if backend is None:
            tell_if_fp32(settings, "autograd")
            return reference
        return backend

    def chose_precision(self, choice: PrecisionChoice) -> None:
        self.precision_choice = choice
        tell_once_of_choice(choice)


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``sampler.precision = "auto"`` took here, and why."""

    precision: str  # fp32 or bf16
    why: str  # a clause: "the bf16 kernel ran 2.03x the fp32 kernel on this CPU", "this CPU has no ..."
    speedup: float | None = None  # the bf16 kernel's speed over the fp32 kernel's, where they were raced

    def as_dict(self) -> dict:
        return {"precision": self.precision, "why": self.why, "speedup": self.speedup}


def uses_cuda_graph(impl: str, init: torch.Tensor, keep_every: int | None) -> bool:
    """CUDA graphs for chains on a GPU (``auto`` or ``cudagraph``), except when intermediate states are kept
    (GIFs), which the eager loop records."""
    if impl not in ("auto", "cudagraph") or init.device.type != "cuda":
        if impl == "cudagraph":
            raise ConfigError("sampler.impl='cudagraph' needs a CUDA GPU; use impl='auto' to pick by device")
        return False
    return keep_every is None


def model_signature(model: nn.Module) -> tuple:
    """What a choice reads from the model besides its weights, cheap to read at every call."""
    return (tuple(map(id, model.modules())), has_hooks(model),
            tuple((p.dtype, p.device) for p in model.parameters()))


def plan_backend(model: nn.Module, init: torch.Tensor, settings: ChainSettings,
                 chose_precision: Callable[[PrecisionChoice], None] | None = None) -> ChainBackend | None:
    """The fused or native backend for this model and these chains, or None for the autograd loop; where
    precision "auto" chooses, ``chose_precision`` hears its choice."""
    impl = settings.impl
    if impl == "autograd":
        return None
    plan = SwishPlan.for_model(model, tuple(init.shape[1:])) if init.dtype == torch.float32 else None
    if plan is None:
        if impl != "auto":
            raise ConfigError(f"sampler.impl={impl!r} needs a SwishEnergyNet (plain Conv2d/SiLU layers, "
                              f"no hooks, float32) and float32 images; got {type(model).__name__} with "
                              f"{init.dtype} images. Use impl='auto' or 'autograd' for other models.")
        return None
    on_cpu = init.device.type == "cpu" and all(p.device.type == "cpu" for p in model.parameters())
    if impl == "auto" and not on_cpu:
        return None  # on a GPU, auto means CUDA graphs (or the eager loop, when chain states are kept)
    kernels = None
    if impl in ("auto", "native"):
        spec = plan.native_spec()
        if not on_cpu or spec is None:
            if impl == "native":
                raise ConfigError("sampler.impl='native' runs on CPU only, for one-channel images of 32, 64... "
                                  "pixels and stride-2 convs with padding kernel // 2, odd kernels, multiples "
                                  "of 16 channels and hidden units")
            if on_cpu:
                tell_once_of_the_slower_path(tuple(init.shape[1:]))
        elif settings.precision == "auto":
            with main_thread_alone(worker_count(init, settings.threads)):  # the race runs as the chains will
                kernels, choice = auto_kernels(plan, impl, settings)
        else:
            kernels = bf16_kernels(plan) if settings.precision == "bf16" else None
            kernels = kernels or native.load(spec, required=impl == "native")
        if impl == "auto" and kernels is not None:
            with main_thread_alone(worker_count(init, settings.threads)):  # the race runs as the chains will
                faster = race.native_is_faster(plan, kernels, settings.threads, settings.grad_clip)
            kernels = kernels if faster else None
        if settings.precision == "auto" and chose_precision is not None and spec is not None and on_cpu:
            if kernels is None:  # the ATen path won the impl race (or no kernel built): its products are fp32
                choice = PrecisionChoice("fp32", "the chains run the fused ATen path here, which has no bf16 products")
            chose_precision(choice)
    if kernels is None:
        tell_if_fp32(settings, "fused")
        return fused_backend(plan, settings.noise, settings.grad_clip, settings.threads)
    return native.NativeBackend(plan, kernels, settings.noise, settings.grad_clip, settings.threads)


def auto_kernels(plan: SwishPlan, impl: str, settings: ChainSettings) -> tuple[native.NativeKernels | None,
                                                                              PrecisionChoice]:
    """The native kernels precision "auto" takes for ``plan`` here (None: none build), and its choice."""
    fp32 = native.load(plan.native_spec(), required=impl == "native")
    reason = native.why_no_bf16()
    if reason:
        return fp32, PrecisionChoice("fp32", reason)
    bf16 = native.load(plan.native_spec("bf16"), quiet=True)
    if bf16 is None:
        why = native.why_unavailable(plan.native_spec("bf16"))
        return fp32, PrecisionChoice("fp32", f"the bf16 kernel did not build ({why})")
    if fp32 is None:
        return bf16, PrecisionChoice("bf16", "the fp32 kernel did not build")
    speedup = race.bf16_speedup(plan, fp32, bf16, settings.threads, settings.grad_clip)
    if speedup >= BF16_MARGIN:
        return bf16, PrecisionChoice("bf16", f"the bf16 kernel ran {speedup:.2f}x the fp32 kernel on this CPU",
                                     speedup)
    return fp32, PrecisionChoice("fp32", f"the bf16 kernel ran {speedup:.2f}x the fp32 kernel on this CPU (bf16 "
                                 f"needs {BF16_MARGIN}x)", speedup)


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
_told_fp32: set[str] = set()
_told_choice: set[PrecisionChoice] = set()
STACKLEVEL = 7  # a warning names a line near the sampler's caller (sample -> backend -> choose -> ...)


def tell_once_of_the_slower_path(shape: tuple[int, ...]) -> None:
    """Say once per image shape that the CPU chains run the ATen path, and what that costs."""
    if shape in _told:
        return
    _told.add(shape)
    warnings.warn(f"genframe: sampler: {'x'.join(map(str, shape))} images run the ATen path (sampler.impl "
                  "'fused'), not the native C kernel, which covers one-channel images of 32, 64, ... pixels and nets "
                  "whose widths are multiples of 16; "
                  f"where both run it measured {ATEN_VS_NATIVE}x slower (docs/performance.md, 'Other image "
                  "shapes')", UserWarning, stacklevel=STACKLEVEL)


def tell_once_of_choice(choice: PrecisionChoice) -> None:
    """Print once per process (the first of a torchrun job's) what precision "auto" took, and why."""
    if choice in _told_choice or os.environ.get("RANK", "0") != "0":
        return
    _told_choice.add(choice)
    raced = " (raced once per machine, kept in the kernel cache)" if choice.speedup is not None else ""
    print(f"genframe: sampler.precision='auto' takes {choice.precision} here: {choice.why}{raced}", file=sys.stderr,
          flush=True)


def tell_if_fp32(settings: ChainSettings, path: str) -> None:
    """With precision bf16, say once that this path (not the native CPU kernel) runs fp32."""
    if settings.precision == "bf16":
        tell_once_of_fp32(f"the bf16 products exist only in the native CPU kernel; these chains run the {path} path")


def tell_once_of_fp32(reason: str) -> None:
    """Say once per reason that sampler.precision='bf16' runs fp32 here, and why."""
    if reason not in _told_fp32:
        _told_fp32.add(reason)
        warnings.warn(f"genframe: sampler.precision='bf16' runs fp32 here: {reason}", UserWarning,
                      stacklevel=STACKLEVEL)
