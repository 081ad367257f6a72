"""Which CPU backend ``sampler.impl = "auto"`` takes on this machine, native or fused: measured, not assumed.

The compiled step (native) beat the hand-written ATen gradient (fused) by 2.5x on the AMD EPYC Zen 4
machine it was written on, and once lost by 4.8x on a Zen 3 one, before it had vectors and register
blocks sized for CPUs without AVX-512 (it now wins by 2.2x on an AVX2 EPYC of family 23:
docs/performance.md). Which wins depends on the CPU and compiler, so ``auto`` times both, once per
machine, net shape and thread count, on a few chains of its own (never the run's random streams), and
remembers the answer in the kernel cache: a machine keeps its choice from run to run, so a resume takes
the same path as the run it continues.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import torch

from genframe import atomic_write_text
from genframe_ebm.backends import native
from genframe_ebm.backends.fused import fused_backend

ROUNDS = 3  # alternating timings, the fastest of each kept: a noisy machine still gets a fair race
STEPS = 2  # SGLD steps per timing, after one warm-up step each
_lock = threading.Lock()
_choices: dict[tuple[str, int], bool] = {}  # (kernel build, threads) -> native is faster: asked every step


def native_is_faster(plan, kernels: native.NativeKernels, threads: int, grad_clip: float) -> bool:
    """Whether the compiled step is faster than the ATen one for ``plan`` with ``threads`` workers here.

    Raced once per kernel build (source, flags, compiler, CPU), torch version and thread count; the
    answer is kept in the kernel cache under a file lock, so the processes of a torchrun job on one
    machine race once and all take the same path."""
    key = (kernels.build, threads)
    with _lock:
        if key not in _choices:
            name = hashlib.sha256(f"{kernels.build}\n{threads}\n{torch.__version__}".encode()).hexdigest()[:20]
            _choices[key] = _remembered_or_raced(native.cache_dir() / f"choice_{name}.json", plan, kernels, threads,
                                                 grad_clip)
        return _choices[key]


def _remembered_or_raced(path: Path, plan, kernels, threads: int, grad_clip: float) -> bool:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held for the race, closed below
    except OSError:
        return _race(plan, kernels, threads, grad_clip)["native"]  # a read-only cache: race in this process
    with lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # another process racing now: wait for its answer
        except ImportError:  # not POSIX: processes starting together may each race
            pass
        try:
            return bool(json.loads(path.read_text())["native"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        record = _race(plan, kernels, threads, grad_clip)
        try:
            atomic_write_text(path, json.dumps(record))
        except OSError:
            pass  # a cache that cannot be written: the next process races again
        return record["native"]


def _race(plan, kernels, threads: int, grad_clip: float) -> dict:
    """Time both paths on chains of their own (never the run's random streams), alternating rounds."""
    contenders = {"native": native.NativeBackend(plan, kernels, 0.005, grad_clip, threads).bind(),
                  "fused": fused_backend(plan, 0.005, grad_clip, threads).bind()}
    generator = torch.Generator().manual_seed(0)
    shape = (plan.convs[0].in_channels, *plan.sizes[0])
    init = torch.rand((16 * threads, *shape), generator=generator) * 2 - 1
    best = {name: float("inf") for name in contenders}
    for chains in contenders.values():  # warm-up: first-touch allocations, thread start
        chains.run(init, [10.0], None, generator)
    for _ in range(ROUNDS):
        for name, chains in contenders.items():
            start = time.perf_counter()
            chains.run(init, [10.0] * STEPS, None, generator)
            best[name] = min(best[name], time.perf_counter() - start)
    return {"native": best["native"] < best["fused"], "seconds": best, "threads": threads, "chains": init.shape[0]}
