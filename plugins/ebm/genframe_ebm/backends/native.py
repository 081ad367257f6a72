"""The ``native`` backend: the whole SGLD step for the Swish CNN as C generated for the net's shape
(native_src.py), compiled on first use, called through ctypes, the chains on worker threads (threaded.py).

Why: with the ops of PyTorch, the one-channel first conv and above all its input gradient (a
16-to-1-channel transposed conv) run far below the machine's FMA rate in oneDNN (at batch 128 they
took longer than the other three convs forward and backward together), every layer's activations
and gradients go through memory (MBs per batch), and each step is ~25 ops with their dispatch,
allocation and thread fork/join. Here one call does a whole step for a chunk of chains, image by
image in cache, with noise, SiLU, SiLU', clipping and the update fused in.

The C source is specialised to one net shape, compiled with the system C compiler (``$CC`` or
``cc``) into a per-user cache keyed by the source, flags and CPU, and loaded with ctypes (which
releases the GIL, so sampler threads run the kernels in parallel). Without a compiler, or if the
build fails, ``load`` warns once and returns None and the sampler uses the fused backend instead.

The build targets this CPU (``-march=native``, its own vector width). ``GENFRAME_NATIVE_TARGET``
forces a portable one instead: ``avx2`` (8 lanes, ``-march=x86-64-v3``) or ``avx512`` (16 lanes,
``-march=x86-64-v4``), so an AVX-512 machine can still run, and test, the 8-lane kernel in a build
that holds no AVX-512 instruction.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from genframe import ConfigError
from genframe_ebm.backends import native_src
from genframe_ebm.backends.threaded import ThreadedBackend

_FLAGS = ["-fno-math-errno", "-shared", "-fPIC", "-std=gnu11"]  # after -O3 and the target's -march
TARGET_ENV = "GENFRAME_NATIVE_TARGET"
# target: (floats per vector, its -march, the CPU flags (as /proc/cpuinfo names them) its code needs)
TARGETS = {
    "native": (None, "native", ()),
    "avx2": (8, "x86-64-v3", ("avx2", "fma", "bmi2", "f16c", "movbe")),
    "avx512": (16, "x86-64-v4", ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")),
}


def forced_target() -> str:
    """The build target ``GENFRAME_NATIVE_TARGET`` names: native (unset), avx2 or avx512."""
    value = os.environ.get(TARGET_ENV, "").strip().lower() or "native"
    if value not in TARGETS:
        raise ConfigError(f"{TARGET_ENV}={value!r} is not a kernel target; use one of {', '.join(TARGETS)} "
                          "(or leave it unset: native)")
    return value


def missing_features(target: str) -> list[str]:
    """The CPU features ``target``'s code needs that this CPU lacks (none known where /proc/cpuinfo is missing)."""
    flags = _cpu_flags()
    return [] if flags is None else [name for name in TARGETS[target][2] if name not in flags]


def default_lanes(target: str) -> int:
    """Floats per vector of an fp32 build for ``target``: the target's own, else this CPU's."""
    return TARGETS[target][0] or vector_lanes()


def why_no_bf16() -> str | None:
    """Why the bf16 kernels cannot run here (the CPU, or a forced AVX2 build), or None where they can."""
    if not cpu_has_bf16():
        return "this CPU has no AVX-512 BF16 dot products (avx512_bf16)"
    if forced_target() == "avx2":
        return f"{TARGET_ENV}=avx2 builds without AVX-512, and bf16 products need AVX-512 BF16"
    return None


@dataclass(frozen=True)
class NativeSpec:
    """The net the kernels are built for: one-channel size x size images; convs (in, out, kernel), each
    stride 2 with padding kernel // 2; then Dense(hidden), SiLU, Dense(1). ``precision``: the convs'
    products in "fp32" or "bf16" (AVX-512 BF16 dot products; native_bf16_src.py). ``lanes``: floats per
    vector; by default 16 for bf16 (AVX-512 instructions), the target's, else this CPU's (``vector_lanes``).
    ``target``: what the build is for (``TARGETS``); by default ``GENFRAME_NATIVE_TARGET``, else native."""

    size: int
    convs: tuple[tuple[int, int, int], ...]
    hidden: int
    precision: str = "fp32"
    lanes: int | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        if self.target is None:
            object.__setattr__(self, "target", forced_target())
        if self.lanes is None:
            object.__setattr__(self, "lanes", 16 if self.precision == "bf16" else default_lanes(self.target))

    def flags(self) -> list[str]:
        """The compiler flags of this build: the target's -march (bf16 adds its dot products to x86-64-v4)."""
        bf16 = ["-mavx512bf16"] if self.precision == "bf16" and self.target != "native" else []
        return ["-O3", f"-march={TARGETS[self.target][1]}", *bf16, *_FLAGS]

    @staticmethod
    def supported(size: int, convs: list[tuple[int, int, int, int, int]], hidden: int) -> bool:
        """``convs``: (in_channels, out_channels, kernel, stride, padding) of square convs."""
        if not convs or convs[0][0] != 1 or hidden % 16 or size % 2 or (size // 2) % 16:
            return False
        for c_in, c_out, k, s, p in convs:
            out = size // 2
            if s != 2 or k % 2 != 1 or p != k // 2 or c_out % 16 or size % 2 or out < 1 or out % min(8, out):
                return False
            size = out
        return all(a[1] == b[0] for a, b in itertools.pairwise(convs))


class NativeKernels:
    """ctypes binding of one compiled library; every tensor passed is contiguous float32 on the CPU."""

    def __init__(self, library: ctypes.CDLL, spec: NativeSpec) -> None:
        self.spec = spec
        self.build = Path(library._name).stem  # the source, flags, compiler and CPU it was built for
        ptr = ctypes.c_void_p
        self._step = library.sgld_step
        self._step.argtypes, self._step.restype = [ptr, ptr, ptr, ptr, ctypes.c_int, ctypes.c_float,
                                                   ctypes.c_float], None
        library.sgld_workspace_floats.restype = ctypes.c_size_t
        self.workspace_floats = int(library.sgld_workspace_floats())
        self._seeded = getattr(library, "sgld_step_seeded", None) if spec.precision == "bf16" else None
        if self._seeded is not None:
            self._seeded.argtypes = [ptr, ptr, ptr, ctypes.c_int, ctypes.c_float, ctypes.c_float, ctypes.c_float,
                                     ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32]
            self._seeded.restype = None

    @property
    def draws_noise(self) -> bool:
        """Whether these kernels draw the Langevin noise themselves (``step_seeded``); the bf16 ones do."""
        return self._seeded is not None

    @staticmethod
    def pointers(tensors: list) -> ctypes.Array:
        """The weight-pointer array ``step`` takes; the tensors must stay alive while it is used."""
        assert all(t.is_contiguous() and t.dtype.is_floating_point for t in tensors)
        return (ctypes.c_void_p * len(tensors))(*(t.data_ptr() for t in tensors))

    def step(self, x, noise, weights: ctypes.Array, workspace, step: float, clip: float) -> None:
        """One SGLD step on the chains x, in place: x = clamp(x + noise); x = clamp(x + step * clip(grad))."""
        self._step(x.data_ptr(), None if noise is None else noise.data_ptr(), weights, workspace.data_ptr(),
                   x.shape[0], step, clip)

    def step_seeded(self, x, weights: ctypes.Array, workspace, step: float, clip: float, std: float, seed: int,
                    t: int, image0: int) -> None:
        """``step`` with Gaussian noise of std ``std`` drawn in the kernel: image i of x (``image0 + i`` of the
        whole batch) gets at step ``t`` the noise of (seed, t, image0 + i) whichever chunk it runs in."""
        self._seeded(x.data_ptr(), weights, workspace.data_ptr(), x.shape[0], step, clip, std, seed & 0xFFFFFFFF,
                     t & 0xFFFFFFFF, image0 & 0xFFFFFFFF)


_lock = threading.Lock()
_loaded: dict[NativeSpec, NativeKernels | None] = {}
_loaded_errors: dict[NativeSpec, str] = {}


def cache_dir() -> Path:
    root = os.environ.get("GENFRAME_KERNEL_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "genframe" / "kernels"


def _cpu_signature() -> str:
    """-march=native output depends on the CPU: a cache shared between machines must not mix them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() + platform.machine()


def _build(spec: NativeSpec) -> Path:
    no_bf16 = why_no_bf16() if spec.precision == "bf16" else None
    if no_bf16:
        raise RuntimeError(no_bf16)
    missing = missing_features(spec.target)
    if missing:  # its code would stop the process with an illegal instruction
        raise RuntimeError(f"{TARGET_ENV}={spec.target} builds for CPU features this CPU lacks: {', '.join(missing)}")
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise RuntimeError(f"no C compiler found (looked for {os.environ.get('CC', 'cc')!r}; set $CC)")
    source = native_src.source(spec.size, list(spec.convs), spec.hidden, spec.precision, spec.lanes)
    flags = spec.flags()
    key = hashlib.sha256("\n".join([source, " ".join(flags), compiler, _cpu_signature()]).encode()).hexdigest()[:20]
    directory = cache_dir()
    target = directory / f"sgld_step_{key}.so"
    if target.exists():
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:  # build aside, then rename: readers never see half a file
        src, out = Path(tmp) / "kernels.c", Path(tmp) / "kernels.so"
        src.write_text(source)
        result = subprocess.run([compiler, *flags, str(src), "-o", str(out)], capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[-500:]}")
        os.replace(out, target)
    return target


@functools.cache
def _cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo (read once), or None where it has none (not Linux)."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return None
    return frozenset(flags.split(":", 1)[-1].split())


@functools.cache
def vector_lanes() -> int:
    """Floats per vector the kernels are written in here: 16 where the CPU has AVX-512 (32 registers of 16),
    else 8. On an AVX2 CPU (16 registers of 8) 16-lane code spills its accumulators: on a 2-core AMD EPYC
    (family 23, AVX2) at batch 128 it ran 2.9x slower than the ATen path, 8-lane code 2.2x faster
    (benchmarks/results/sgld_avx2.json). CPUs without /proc/cpuinfo get 8 too."""
    flags = _cpu_flags()
    return 16 if flags is not None and "avx512f" in flags else 8


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU has AVX-512 BF16 dot products (where /proc/cpuinfo is missing: try to build)."""
    flags = _cpu_flags()
    if flags is None:
        return platform.machine().lower() in ("x86_64", "amd64")
    return "avx512_bf16" in flags


def why_unavailable(spec: NativeSpec) -> str:
    """Why ``load(spec)`` returned None."""
    return _loaded_errors.get(spec, "not tried")


def load(spec: NativeSpec, required: bool = False, quiet: bool = False) -> NativeKernels | None:
    """The kernels for ``spec``, built on first use; None (with one warning unless ``quiet``) if they cannot be
    built."""
    with _lock:
        if spec not in _loaded:
            try:
                _loaded[spec] = NativeKernels(ctypes.CDLL(str(_build(spec))), spec)
            except Exception as exc:  # no compiler, read-only cache, odd platform: the ATen path still works
                _loaded[spec] = None
                _loaded_errors[spec] = str(exc)
                if not (required or quiet):
                    warnings.warn(f"genframe-ebm: native SGLD step unavailable ({exc}); sampling uses the "
                                  "hand-written gradient in ATen ops instead. "
                                  "sampler.impl='fused' silences this.", RuntimeWarning, stacklevel=3)
        kernels = _loaded[spec]
    if kernels is None and required:
        message = f"sampler.impl='native' but the native SGLD step cannot be built: {_loaded_errors[spec]}"
        if missing_features(spec.target):  # the user's forced target, not a broken build
            raise ConfigError(f"{message}; unset {TARGET_ENV}, or set it to a target this CPU runs")
        raise RuntimeError(message)
    return kernels


class NativeStep:
    """One SGLD step on a chunk of chains as one call of the kernels (a ``ChunkStep``); ``weights``: the
    kernels' weight list (``SwishPlan.weights(native=True)``), kept alive while the pointers are used."""

    def __init__(self, kernels: NativeKernels, weights: list, grad_clip: float, noise: float) -> None:
        self.kernels, self.weights, self.grad_clip, self.noise = kernels, weights, grad_clip, noise
        self.draws_noise = kernels.draws_noise

    def workspace(self) -> tuple[ctypes.Array, torch.Tensor]:
        return self.kernels.pointers(self.weights), torch.zeros(self.kernels.workspace_floats)  # borders kept zero

    def step(self, x, noise, step_size: float, workspace) -> None:
        pointers, buffers = workspace
        self.kernels.step(x, noise, pointers, buffers, step_size, self.grad_clip)

    def step_seeded(self, x, step_size: float, workspace, seed: int, t: int, image0: int) -> None:
        pointers, buffers = workspace
        self.kernels.step_seeded(x, pointers, buffers, step_size, self.grad_clip, self.noise, seed, t, image0)


class NativeBackend(ThreadedBackend):
    """The native backend for ``plan``'s net (a ``SwishPlan``) with ``kernels`` built for it; the weights are
    packed in the kernels' layouts at each ``run`` (training changes them)."""

    def __init__(self, plan, kernels: NativeKernels, noise: float, grad_clip: float, threads: int) -> None:
        precision = kernels.spec.precision
        super().__init__("native" if precision == "fp32" else f"native-{precision}",
                         lambda: NativeStep(kernels, plan.weights(native=True, precision=precision).native, grad_clip,
                                            noise), noise, threads)
        self.kernels = kernels
