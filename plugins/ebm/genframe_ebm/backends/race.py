"""The races ``auto`` settings run on this machine: measured, not assumed.

``sampler.impl = "auto"``, native or fused: the compiled step (native) beat the hand-written ATen gradient
(fused) by 2.5x on the AMD EPYC Zen 4 machine it was written on, and once lost by 4.8x on a Zen 3 one,
before it had vectors and register blocks sized for CPUs without AVX-512 (it now wins by 2.2x on an AVX2
EPYC of family 23: docs/performance.md).

``sampler.precision = "auto"``, bf16 or fp32 products in the native kernel: the bf16 kernel ran 2.03x the
fp32 one on an AMD Zen 4 and 0.94x to 1.00x on an Intel Xeon with AMX (issue 48), so it is raced too.

Which wins depends on the CPU and compiler, so each race times both contenders, once per machine, net
shape and thread count, on a few chains of its own (never the run's random streams), and remembers the
answer in the kernel cache: a machine keeps its choice from run to run, and the processes of a torchrun
job on one machine race once (under a file lock) and all take the same path.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from genframe import atomic_write_text
from genframe_ebm.backends import native
from genframe_ebm.backends.fused import fused_backend

ROUNDS = 3  # alternating timings, the fastest of each kept: a noisy machine still gets a fair race
STEPS = 2  # SGLD steps per timing, after one warm-up step each
_lock = threading.Lock()
_records: dict[str, dict] = {}  # race key -> its record: asked at every choice


def native_is_faster(plan, kernels: native.NativeKernels, threads: int, grad_clip: float) -> bool:
    """Whether the compiled step is faster than the ATen one for ``plan`` with ``threads`` workers here, raced
    once per kernel build (source, flags, compiler, CPU), torch version and thread count."""
    key = f"{kernels.build}\n{threads}\n{torch.__version__}"
    contenders = lambda: {"native": native.NativeBackend(plan, kernels, 0.005, grad_clip, threads),  # noqa: E731
                          "fused": fused_backend(plan, 0.005, grad_clip, threads)}
    record = _remembered(key, lambda: _race(plan, contenders(), threads))
    return bool(record["native"] if "native" in record else record["seconds"]["native"] < record["seconds"]["fused"])


def bf16_speedup(plan, fp32: native.NativeKernels, bf16: native.NativeKernels, threads: int,
                 grad_clip: float) -> float:
    """How many times faster the bf16 kernel runs ``plan``'s chains than the fp32 one here, with ``threads``
    workers: raced once per pair of builds, torch version and thread count."""
    key = f"{fp32.build}\n{bf16.build}\n{threads}\n{torch.__version__}"
    contenders = lambda: {"fp32": native.NativeBackend(plan, fp32, 0.005, grad_clip, threads),  # noqa: E731
                          "bf16": native.NativeBackend(plan, bf16, 0.005, grad_clip, threads)}
    record = _remembered(key, lambda: _race(plan, contenders(), threads))
    return record["seconds"]["fp32"] / record["seconds"]["bf16"]


def _remembered(key: str, race: Callable[[], dict]) -> dict:
    with _lock:
        if key not in _records:
            name = hashlib.sha256(key.encode()).hexdigest()[:20]
            _records[key] = _remembered_or_raced(native.cache_dir() / f"choice_{name}.json", race)
        return _records[key]


def _remembered_or_raced(path: Path, race: Callable[[], dict]) -> dict:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held for the race, closed below
    except OSError:
        return race()  # a read-only cache: race in this process
    with lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # another process racing now: wait for its answer
        except ImportError:  # not POSIX: processes starting together may each race
            pass
        try:
            record = json.loads(path.read_text())
            if isinstance(record, dict) and isinstance(record.get("seconds"), dict):
                return record
        except (OSError, ValueError):
            pass
        record = race()
        try:
            atomic_write_text(path, json.dumps(record))
        except OSError:
            pass  # a cache that cannot be written: the next process races again
        return record


def _race(plan, contenders: dict, threads: int) -> dict:
    """Time the contenders (backends) on chains of their own (never the run's random streams), alternating
    rounds; each one's fastest round, in seconds."""
    bound = {name: backend.bind() for name, backend in contenders.items()}
    generator = torch.Generator().manual_seed(0)
    shape = (plan.convs[0].in_channels, *plan.sizes[0])
    init = torch.rand((16 * threads, *shape), generator=generator) * 2 - 1
    best = {name: float("inf") for name in bound}
    for chains in bound.values():  # warm-up: first-touch allocations, thread start
        chains.run(init, [10.0], None, generator)
    for _ in range(ROUNDS):
        for name, chains in bound.items():
            start = time.perf_counter()
            chains.run(init, [10.0] * STEPS, None, generator)
            best[name] = min(best[name], time.perf_counter() - start)
    return {"seconds": best, "threads": threads, "chains": init.shape[0]}
