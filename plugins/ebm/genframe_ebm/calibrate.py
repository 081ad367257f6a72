"""Which CPU fast path ``sampler.impl = "auto"`` takes on this machine: measured, not assumed.

The compiled step (native) beat the hand-written ATen gradient (fused) by 2.5x on the AMD EPYC Zen 4
machine it was written on, and lost by 4.6x on a Zen 3 one (no AVX-512: 1,344 against 6,428 img-steps/s
at batch 128). So ``auto`` times both, once per machine, net shape and thread count, on a few chains of
its own (never the run's random streams), and remembers the answer in the kernel cache: a machine keeps
its choice from run to run, so a resume takes the same path as the run it continues.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time

import torch

from genframe_ebm import native

ROUNDS = 3  # alternating timings, the fastest of each kept: a noisy machine still gets a fair race
STEPS = 2  # SGLD steps per timing, after one warm-up step each
_lock = threading.Lock()
_choices: dict[str, bool] = {}


def native_is_faster(plan, kernels: native.NativeKernels, threads: int, grad_clip: float) -> bool:
    """Whether the compiled step is faster than the ATen one for ``plan`` with ``threads`` workers here."""
    from genframe_ebm.fastpath import FastChains

    key = hashlib.sha256("\n".join([repr(kernels.spec), str(threads), native._cpu_signature()]).encode()).hexdigest()[:20]
    path = native.cache_dir() / f"choice_{key}.json"
    with _lock:
        if key in _choices:
            return _choices[key]
        try:
            _choices[key] = bool(json.loads(path.read_text())["native"])
            return _choices[key]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        contenders = {"native": FastChains(plan, plan.weights(native=True), kernels, 0.005, grad_clip),
                      "fused": FastChains(plan, plan.weights(native=False), None, 0.005, grad_clip)}
        generator = torch.Generator().manual_seed(0)
        shape = (plan.convs[0].in_channels, *plan.sizes[0])
        init = torch.rand((16 * threads, *shape), generator=generator) * 2 - 1
        best = {name: float("inf") for name in contenders}
        for name, chains in contenders.items():  # warm-up: first-touch allocations, thread start
            chains.sample(init, [10.0], None, generator, threads)
        for _ in range(ROUNDS):
            for name, chains in contenders.items():
                start = time.perf_counter()
                chains.sample(init, [10.0] * STEPS, None, generator, threads)
                best[name] = min(best[name], time.perf_counter() - start)
        _choices[key] = best["native"] < best["fused"]
        record = {"native": _choices[key], "seconds": best, "threads": threads, "chains": init.shape[0]}
        try:  # written aside and renamed: a reader never sees half a file
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(record))
            os.replace(partial, path)
        except OSError:
            pass  # a read-only cache: measured again by the next process
        return _choices[key]
