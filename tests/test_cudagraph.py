"""The CUDA-graph SGLD path. Its arithmetic and block plan are checked here on CPU; the capture,
replay, CUDA training and CUDA-to-CPU checkpoints only where a CUDA GPU is present (CI has none)."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY
from genframe_ebm.backends import select
from genframe_ebm.backends.autograd import frozen
from genframe_ebm.backends.cudagraph import GraphedBlock, block_plan, sgld_block
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from sampler_paths import on_path

import genframe
from genframe.contracts.errors import ConfigError
from genframe.training.checkpoint import load_checkpoint
from genframe.util.reproducible import reproducible_kernels

needs_cuda = on_path("cudagraph")


def test_block_plan_covers_every_step_once():
    assert block_plan(60) == [(0, 60)]
    assert block_plan(1000) == [(i * 64, 64) for i in range(15)] + [(960, 40)]
    assert block_plan(0) == []


def test_captured_block_body_is_the_reference_loop():
    """The graph captures ``sgld_block``; on CPU it must give the eager sampler's chain."""
    torch.manual_seed(0)
    model = SwishEnergyNet()
    init = torch.rand((8, 1, 32, 32), generator=torch.Generator().manual_seed(1)) * 2 - 1
    sampler = SGLDSampler(impl="autograd", step_size=100.0, noise=0.01)
    want = sampler.sample(model, init, 12, generator=torch.Generator().manual_seed(2)).images
    generator = torch.Generator().manual_seed(2)
    noise = torch.stack([0.01 * torch.randn(init.shape, generator=generator) for _ in range(12)])
    with frozen(model):
        got = sgld_block(model, init.clone(), noise, torch.tensor(sampler.step_sizes(12)), sampler.grad_clip)
    assert (got - want).abs().max() <= 2e-6


def test_cudagraph_impl_without_a_gpu_is_a_config_error():
    sampler = SGLDSampler(impl="cudagraph")
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        sampler.sample(SwishEnergyNet(), torch.zeros((2, 1, 32, 32)), 1)


@needs_cuda
def test_graph_replay_gives_the_eager_chain_from_the_same_seed():
    torch.manual_seed(0)
    model = SwishEnergyNet().cuda()
    init = torch.rand((128, 1, 32, 32), device="cuda") * 2 - 1
    runs = {}
    for impl in ("autograd", "cudagraph"):
        sampler = SGLDSampler(impl=impl, steps=60)
        generator = torch.Generator(device="cuda").manual_seed(3)
        runs[impl] = (sampler.sample(model, init, generator=generator).images, generator.get_state())
        assert sampler.implementation(model, init) == impl
    assert (runs["cudagraph"][0] - runs["autograd"][0]).abs().max() <= 1e-4
    assert torch.equal(runs["cudagraph"][1], runs["autograd"][1])  # same draws: resume stays exact
    again = SGLDSampler(impl="cudagraph", steps=60)  # a second call replays the cached graph
    with reproducible_kernels():  # as genframe samples: without it, atomics in cuDNN make replays differ
        first = again.sample(model, init, generator=torch.Generator(device="cuda").manual_seed(3)).images
        second = again.sample(model, init, generator=torch.Generator(device="cuda").manual_seed(3)).images
    assert torch.equal(first, second) and len(again.backends.graphs.blocks) == 1


@needs_cuda
def test_cuda_training_resumes_exactly_and_its_checkpoint_samples_on_cpu(tmp_path):
    on_gpu = [*TINY, "trainer.device=cuda"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    genframe.train("ebm", overrides=on_gpu, run_dir=straight, quiet=True)
    genframe.train("ebm", overrides=[*on_gpu, "trainer.max_steps=3"], run_dir=split, quiet=True)
    genframe.train("ebm", resume=split, overrides=["trainer.max_steps=6"], quiet=True)
    a, b = load_checkpoint(straight), load_checkpoint(split)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    loaded = genframe.load(straight, device="cpu")
    images = loaded.sample(4, steps=5).images
    assert images.device.type == "cpu" and images.shape == (4, 1, 32, 32)


class GraphFailure:
    """Makes the CUDA-graph path run on CPU tensors (``uses_cuda_graph`` says yes) and fail as asked."""

    def __init__(self, monkeypatch, fail_in: str) -> None:
        self.tries = 0
        monkeypatch.setattr(select, "uses_cuda_graph", lambda impl, init, keep_every: True)
        capture = self.capture if fail_in == "capture" else self.fake_capture
        # plain functions, so that the block is passed as the first argument (bound methods are not rebound)
        monkeypatch.setattr(GraphedBlock, "__init__", lambda block, *args: capture(block, *args))
        monkeypatch.setattr(GraphedBlock, "replay", lambda block, *args: self.replay(block, *args))

    def capture(self, block, *args, **kwargs):
        self.tries += 1
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\n" + "detail " * 100)

    def fake_capture(self, block, model, shape, dtype, device, length, grad_clip):
        self.tries += 1
        block.x = torch.zeros(shape, dtype=dtype, device=device)
        block.noise = torch.zeros((length, *shape), dtype=dtype, device=device)

    def replay(self, block, step_sizes, noise_std, generator):
        # Draw the block's noise first, as the real replay does, so the fallback must rewind the generator.
        for t in range(block.noise.shape[0]):
            torch.randn(block.x.shape, generator=generator, out=block.noise[t])
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


@pytest.mark.parametrize("fail_in", ["capture", "replay"])
def test_a_failing_cuda_graph_falls_back_to_the_eager_loop_with_one_warning(monkeypatch, fail_in):
    torch.manual_seed(0)
    model = SwishEnergyNet()
    init = torch.rand((4, 1, 32, 32), generator=torch.Generator().manual_seed(1)) * 2 - 1
    eager = SGLDSampler(impl="autograd", steps=70)  # 70 steps: two blocks (64 + 6), so two captures if it retried
    want = [eager.sample(model, init, generator=torch.Generator().manual_seed(seed)).images for seed in (2, 3)]

    sampler = SGLDSampler(impl="auto", steps=70)
    failure = GraphFailure(monkeypatch, fail_in)
    with pytest.warns(UserWarning) as caught:
        got = [sampler.sample(model, init, generator=torch.Generator().manual_seed(seed)).images for seed in (2, 3)]
    assert all(torch.equal(a, b) for a, b in zip(got, want))  # the eager chains, noise and all
    assert failure.tries == 1  # the second call did not try graphs again
    assert len(caught) == 1
    message = str(caught[0].message)
    reason = "operation not permitted" if fail_in == "capture" else "an illegal memory access"
    assert f"CUDA graph sampling failed (RuntimeError: CUDA error: {reason}" in message and "\n" not in message
    assert len(message) < 500  # the error is shortened
    assert "genframe plugins" in message and "sampler.impl=autograd" in message
    assert sampler.backends.graphs.blocks == {} and sampler.implementation(model, init) == "autograd"


def test_out_of_memory_in_a_graph_is_raised_for_a_smaller_chunk_not_a_fallback(monkeypatch):
    sampler = SGLDSampler(impl="auto", steps=3)
    monkeypatch.setattr(select, "uses_cuda_graph", lambda impl, init, keep_every: True)

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(GraphedBlock, "__init__", out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        sampler.sample(SwishEnergyNet(), torch.zeros((2, 1, 32, 32)))
    assert sampler.backends.graphs.failure is None  # graphs stay on: generate_in_chunks retries smaller


def test_reproducible_kernels_are_scoped_to_genframe_work():
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    try:
        cudnn.deterministic, cudnn.benchmark = False, True  # a caller's own choice
        with reproducible_kernels():
            assert cudnn.deterministic and not cudnn.benchmark
        assert not cudnn.deterministic and cudnn.benchmark
        with pytest.raises(RuntimeError), reproducible_kernels():
            raise RuntimeError("a failure inside still restores the caller's choice")
        assert not cudnn.deterministic and cudnn.benchmark
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


@needs_cuda
def test_one_seed_gives_one_set_of_samples_on_the_gpu(tmp_path):
    genframe.train("ebm", overrides=[*TINY, "trainer.device=cuda", "trainer.max_steps=2"], run_dir=tmp_path / "run",
                   quiet=True)
    loaded = genframe.load(tmp_path / "run", device="cuda")
    first, second = loaded.sample(256, seed=5).images, loaded.sample(256, seed=5).images
    assert torch.equal(first, second)
