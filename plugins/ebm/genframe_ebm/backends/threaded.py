"""Chains run on CPU worker threads: the engine of the fused and native backends (fused.py, native.py).

A backend gives one SGLD step on a chunk of chains (a ``ChunkStep``: ATen ops, or one C call); this
module splits the batch across worker threads, feeds each step its noise, and keeps the chain states.

Why threads over the batch: chains are independent, and one SGLD step is ~25 small ops. Run with
intra-op threads, every op pays a fork/join and splits work too small to split well; each worker
thread instead runs its own chunk of chains on one core (intra-op threads = 1): 1.2x for the ATen
path on a 2-core machine (19,300 against 15,900 img-steps/s at batch 128), and the native step, one C
call per step, needs it to use more than one core. Torch ops and ctypes calls release the GIL.
This needs the OpenMP build of PyTorch (thread count per thread); other builds use one chunk.

Random numbers: all noise comes from the caller's generator, drawn in the main thread exactly as the
reference loop draws it (one ``randn`` of the batch's shape per step, then scaled), so a seed gives
the same chain on every implementation up to float rounding, and the generator ends in the same
state (checkpoint resume stays exact). Noise is drawn in blocks of steps; the main thread draws the
next block while the workers run the current one. The bf16 kernels instead draw their noise themselves
from one seed taken from the generator per call (native_bf16_src.py): a different stream, as
reproducible, and no core lost to the draw.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import torch

from genframe import SampleOutput

MIN_CHUNK = 4  # chains per worker below which another thread costs more than it gives
BLOCK_FLOATS = 1 << 22  # noise drawn per block: 16 MB (32 steps of a 128 batch of 32x32 images)
FIRST_BLOCK = 4  # steps in the first block

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = 0


@functools.cache
def threads_available() -> bool:
    """Per-thread intra-op thread counts exist only with the OpenMP backend."""
    return "OpenMP" in torch.__config__.parallel_info()


def _one_thread() -> None:
    torch.set_num_threads(1)  # OpenMP and MKL keep this per thread: this worker's ops run on its core only


def worker_pool(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size, _pool_pid
    with _pool_lock:
        if _pool_pid != os.getpid():  # a forked child has the pool object but not its threads
            _pool = None
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=True)
            keep = torch.get_num_threads()
            pool = ThreadPoolExecutor(size, thread_name_prefix="genframe-sgld", initializer=_one_thread)
            barrier = threading.Barrier(size)
            # Start all threads now (one task each, held at a barrier), so every initializer has run ...
            list(pool.map(lambda _: barrier.wait(timeout=60), range(size)))
            # ... and undo what set_num_threads(1) also did process-wide (the default for new threads).
            torch.set_num_threads(keep)
            _pool, _pool_size, _pool_pid = pool, size, os.getpid()
        return _pool


def worker_count(x: torch.Tensor, threads: int) -> int:
    """How many workers share the chains ``x``: ``threads``, fewer for small batches, one off the CPU."""
    on_cpu = x.device.type == "cpu"
    return max(1, min(threads, x.shape[0] // MIN_CHUNK)) if on_cpu and threads_available() else 1


@contextlib.contextmanager
def main_thread_alone(workers: int) -> Iterator[None]:
    """With several workers, the calling thread's torch ops around them (packing the weights, the noise draw,
    copies) on one thread: the intra-op team it would otherwise start keeps spinning on the workers' cores
    (measured on the native path: bf16 chains ran 70k img-steps/s while the caller kept 2 threads, 81k with 1;
    batch 128, 2 cores)."""
    if workers == 1:
        yield
        return
    keep = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(keep)


def chunk_bounds(n: int, workers: int) -> list[tuple[int, int]]:
    edges = [round(i * n / workers) for i in range(workers + 1)]
    return [(lo, hi) for lo, hi in itertools.pairwise(edges) if hi > lo]


class ChunkStep(Protocol):
    """One SGLD step on a chunk of chains, in place, with one call's weights: what a backend brings."""

    draws_noise: bool  # the step draws the Langevin noise itself (``step_seeded``), not from ``noise``

    def workspace(self) -> Any:
        """Buffers one worker reuses across steps: made for each block, or for a worker's whole run when the
        step draws its own noise."""

    def step(self, x: torch.Tensor, noise: torch.Tensor, step_size: float, workspace: Any) -> None:
        """x = clamp(x + noise); x = clamp(x + step_size * clip(d score / dx))."""

    def step_seeded(self, x: torch.Tensor, step_size: float, workspace: Any, seed: int, t: int, image0: int) -> None:
        """``step`` with noise drawn from (seed, t, image0 + i) for image i of the chunk x."""


class ThreadedChains:
    """Runs SGLD chains with one ``ChunkStep`` (its weights fixed) on up to ``threads`` workers."""

    def __init__(self, step: ChunkStep, noise: float, threads: int) -> None:
        self.chunk_step, self.noise, self.threads = step, noise, threads
        self.step_sizes: list[float] = []  # per step of the current ``run``

    def run_chunk(self, x: torch.Tensor, noise: torch.Tensor, t0: int,
                  snapshot: Callable[[int, torch.Tensor], None] | None) -> None:
        """``noise.shape[0]`` steps on the chains ``x`` (updated in place), from global step ``t0``."""
        workspace = self.chunk_step.workspace()
        for t in range(noise.shape[0]):
            self.chunk_step.step(x, noise[t], self.step_sizes[t0 + t], workspace)
            if snapshot is not None:
                snapshot(t0 + t + 1, x)

    def run(self, init: torch.Tensor, step_sizes: list[float], keep_every: int | None,
            generator: torch.Generator | None) -> SampleOutput:
        """As many SGLD steps as ``step_sizes`` has entries, step t with step size ``step_sizes[t]``."""
        workers = worker_count(init, self.threads)
        self.step_sizes, steps = step_sizes, len(step_sizes)
        x = init.detach().clone(memory_format=torch.contiguous_format)
        n = x.shape[0]
        chain = [x.clone()] if keep_every else []
        snaps = torch.empty((steps // keep_every, *x.shape), dtype=x.dtype, device=x.device) if keep_every else None
        bounds = chunk_bounds(n, workers)

        def snapshot_for(lo: int) -> Callable[[int, torch.Tensor], None] | None:
            if snaps is None:
                return None

            def keep(step: int, chunk: torch.Tensor) -> None:
                if step % keep_every == 0:
                    snaps[step // keep_every - 1, lo:lo + chunk.shape[0]].copy_(chunk)
            return keep

        if self.chunk_step.draws_noise:
            self._run_seeded(x, generator, bounds, snapshot_for, workers)
            if snaps is not None:
                chain.extend(snaps.unbind(0))
            return SampleOutput(x, chain)
        block = max(1, min(steps, BLOCK_FLOATS // max(1, x.numel())))
        # A short first block (the only noise the workers wait for), then blocks growing 4x, drawn while
        # the workers run the previous one (drawing a step takes ~1/6 of computing it).
        blocks, count = [], min(FIRST_BLOCK, block, steps)
        while sum(c for _, c in blocks) < steps:
            start = sum(c for _, c in blocks)
            blocks.append((start, min(count, steps - start)))
            count = min(block, 4 * count)
        buffers = [torch.empty((block, *x.shape), dtype=x.dtype, device=x.device) for _ in range(min(2, len(blocks)))]

        def draw(index: int) -> torch.Tensor:
            buffer, count = buffers[index % 2], blocks[index][1]
            for t in range(count):  # one randn per step, as the reference loop, for the same stream
                torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device, out=buffer[t])
            return buffer[:count].mul_(self.noise)

        if workers == 1:
            for index, (start, _) in enumerate(blocks):
                self.run_chunk(x, draw(index), start, snapshot_for(0))
        else:
            self._run_threads(x, blocks, buffers, draw, bounds, snapshot_for, worker_pool(workers))
        if snaps is not None:
            chain.extend(snaps.unbind(0))
        return SampleOutput(x, chain)

    def _run_seeded(self, x, generator, bounds, snapshot_for, workers: int) -> None:
        """All steps with noise the step draws from one seed (one draw of ``generator`` per call): each worker
        runs its chunk from start to end, nothing to wait for."""
        seed = int(torch.randint(0, 2**32, (1,), generator=generator, dtype=torch.int64))

        def work(lo: int, hi: int) -> None:
            workspace, chunk, snapshot = self.chunk_step.workspace(), x[lo:hi], snapshot_for(lo)
            for t, step_size in enumerate(self.step_sizes):
                self.chunk_step.step_seeded(chunk, step_size, workspace, seed, t, lo)
                if snapshot is not None:
                    snapshot(t + 1, chunk)

        if workers == 1:
            work(0, x.shape[0])
            return
        futures = [worker_pool(workers).submit(work, lo, hi) for lo, hi in bounds]
        concurrent.futures.wait(futures)
        for future in futures:
            future.result()

    def _run_threads(self, x, blocks, buffers, draw, bounds, snapshot_for, pool) -> None:
        """Each worker runs its chunk through all blocks, waiting only for each block's noise: no barrier
        between workers per block (one sharing its core with the noise-drawing thread falls behind for a
        while, then catches up). A buffer is redrawn once every worker is done with it."""
        drawn = [threading.Event() for _ in blocks]
        finished = [threading.Semaphore(0) for _ in blocks]
        abort = threading.Event()

        def work(lo: int, hi: int) -> None:
            try:
                for index, (start, count) in enumerate(blocks):
                    drawn[index].wait()
                    if abort.is_set():
                        return
                    self.run_chunk(x[lo:hi], buffers[index % 2][:count, lo:hi], start, snapshot_for(lo))
                    finished[index].release()
            except BaseException:
                abort.set()
                for semaphore in finished:  # never leave the drawing thread waiting for this worker
                    semaphore.release(len(bounds))
                raise

        futures = [pool.submit(work, lo, hi) for lo, hi in bounds]
        try:
            for index in range(len(blocks)):
                if index >= 2:
                    for _ in bounds:
                        finished[index - 2].acquire()
                if abort.is_set():
                    break
                draw(index)
                drawn[index].set()
        except BaseException:
            abort.set()
            raise
        finally:
            for event in drawn:  # workers waiting for noise that will not come now return
                event.set()
            concurrent.futures.wait(futures)
        for future in futures:
            future.result()


class ThreadedBackend:
    """A backend whose chains run as ``ThreadedChains``; ``make_step`` reads the model's weights (now)."""

    def __init__(self, name: str, make_step: Callable[[], ChunkStep], noise: float, threads: int) -> None:
        self.name, self.make_step, self.noise, self.threads = name, make_step, noise, threads

    def bind(self) -> ThreadedChains:
        return ThreadedChains(self.make_step(), self.noise, self.threads)

    def run(self, init: torch.Tensor, step_sizes: list[float], keep_every: int | None,
            generator: torch.Generator | None) -> SampleOutput:
        with main_thread_alone(worker_count(init, self.threads)):  # packing the weights included
            return self.bind().run(init, step_sizes, keep_every, generator)
