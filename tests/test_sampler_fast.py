"""The fast SGLD paths against the reference autograd loop: gradient, chains, seeds, fallbacks.

The fast paths (sampler.impl fused/native, picked by auto on CPU) must give the reference loop's
chain from the same seed to float rounding, leave the generator where the loop leaves it, never
apply to a model they do not understand, and degrade to ATen ops when the C kernels cannot be built.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from genframe_ebm.backends import native
from genframe_ebm.backends.swish_plan import SwishPlan
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from sampler_paths import on_path, path_marks
from torch import nn

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"))]
# fp32 rewrites of the same arithmetic: measured <= 4e-7 after 60 steps for the reference net.
CHAIN_TOL = 2e-6


def make_net(seed: int = 0, bias_std: float = 0.0, **kwargs) -> SwishEnergyNet:
    torch.manual_seed(seed)
    net = SwishEnergyNet(**kwargs)
    if bias_std:
        with torch.no_grad():  # nonzero biases, as after training: the gradient must use them right
            for module in net.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    module.bias.normal_(0, bias_std)
    return net


def autograd_grad(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(model(x).sum(), x)[0]


def run(impl: str, model, init, steps, seed=0, keep=None, **kwargs):
    generator = torch.Generator(device=init.device).manual_seed(seed)
    sampler = SGLDSampler(impl=impl, example_shape=init.shape[1:], **kwargs)
    return sampler.sample(model, init, steps, keep_every=keep, generator=generator), generator


@on_path("fused")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", [{}, {"in_channels": 3, "image_size": 28, "channels": [8, 16, 24],
                                       "kernel_sizes": [3, 5, 3], "hidden": 32}])
def test_hand_written_gradient_matches_autograd(device, arch, monkeypatch):
    # cuDNN convolves in TF32 by default (10-bit mantissa: 1e-3 relative); compare the arithmetic in fp32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    model = make_net(bias_std=0.1, **arch).to(device)
    shape = (arch.get("in_channels", 1), arch.get("image_size", 32), arch.get("image_size", 32))
    x = torch.rand((5, *shape), generator=torch.Generator().manual_seed(3)).to(device) * 2 - 1
    plan = SwishPlan.for_model(model, shape)
    assert plan is not None
    got = plan.input_grad(plan.weights(), x)
    want = autograd_grad(model, x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


@on_path("native")
def test_native_first_layer_step_matches_autograd():
    """One native step with noise off and clipping out of reach is x + step * gradient: checks the kernels'
    gradient itself (the clip would hide small errors in a normal step)."""
    model = make_net(bias_std=0.1)
    x = torch.rand((6, 1, 32, 32), generator=torch.Generator().manual_seed(4)) - 0.5  # inside (-1, 1): no clamping
    want = autograd_grad(model, x)
    step = 0.25 / float(want.abs().max())
    out, _ = run("native", model, x, 1, step_size=step, noise=0.0, grad_clip=1e9)
    torch.testing.assert_close((out.images - x) / step, want, rtol=1e-3, atol=2e-4 * float(want.abs().max()))


@pytest.mark.parametrize("impl", [pytest.param(impl, marks=path_marks(impl)) for impl in ("fused", "native")])
def test_fast_chain_matches_reference_loop(impl):
    model = make_net(bias_std=0.05)
    init = torch.rand((16, 1, 32, 32), generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref, ref_gen = run("autograd", model, init, 60)
    out, gen = run(impl, model, init, 60)
    assert SGLDSampler(impl=impl).implementation(model, init) == impl
    assert (out.images - ref.images).abs().max() <= CHAIN_TOL
    assert not torch.equal(out.images, init)
    assert torch.equal(gen.get_state(), ref_gen.get_state())  # same draws: a resumed run continues the same stream


def test_chain_snapshots_match_reference_loop():
    model = make_net()
    init = torch.rand((9, 1, 32, 32), generator=torch.Generator().manual_seed(2)) * 2 - 1
    ref, _ = run("autograd", model, init, 20, keep=3)
    out, _ = run("auto", model, init, 20, keep=3)
    assert len(out.chain) == len(ref.chain) == 7  # the start and steps 3, 6, ..., 18
    assert torch.equal(out.chain[0], init)
    for a, b in zip(out.chain, ref.chain):
        assert (a - b).abs().max() <= CHAIN_TOL


def test_same_seed_same_samples_and_threads_restored():
    model = make_net()
    init = torch.rand((16, 1, 32, 32), generator=torch.Generator().manual_seed(5)) * 2 - 1
    threads = torch.get_num_threads()
    a, _ = run("auto", model, init, 10, seed=7)
    b, _ = run("auto", model, init, 10, seed=7)
    c, _ = run("auto", model, init, 10, seed=8)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert torch.get_num_threads() == threads  # worker threads run single-threaded; the caller's setting stays
    one, _ = run("auto", model, init, 10, seed=7, threads=1)
    assert (one.images - a.images).abs().max() <= CHAIN_TOL  # chunking changes nothing but rounding


def test_weights_are_read_at_every_call():
    """Training changes the weights in place between calls; nothing may be kept from an older call."""
    model = make_net()
    init = torch.rand((8, 1, 32, 32), generator=torch.Generator().manual_seed(6)) * 2 - 1
    sampler = SGLDSampler()
    sampler.sample(model, init, 3)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5).add_(0.01)
    out = sampler.sample(model, init, 10, generator=torch.Generator().manual_seed(0)).images
    ref, _ = run("autograd", model, init, 10)
    assert (out - ref.images).abs().max() <= 1e-4  # stale weights would be ~1e-1 off; larger weights, larger rounding


class Hooked(SwishEnergyNet):
    def forward(self, x):  # a subclass that changes forward: the hand-written gradient no longer applies
        return super().forward(x) * 2


@on_path("autograd")
@pytest.mark.parametrize("kind", ["linear", "subclass", "hook"])
def test_other_models_use_the_autograd_loop(kind):
    if kind == "linear":
        model = nn.Sequential(nn.Flatten(), nn.Linear(1024, 1), nn.Flatten(0))
    elif kind == "subclass":
        model = Hooked()
    else:
        model = make_net()
        model.net[1].register_forward_hook(lambda module, args, out: out * 0.5)
    init = torch.rand((4, 1, 32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert SGLDSampler().implementation(model, init) == "autograd"
    out, _ = run("auto", model, init, 5)
    ref, _ = run("autograd", model, init, 5)
    assert torch.equal(out.images, ref.images)
    with pytest.raises(ValueError, match="needs a SwishEnergyNet"):
        SGLDSampler(impl="fused").sample(model, init, 1)


def test_without_a_compiler_native_warns_and_fused_takes_over(monkeypatch, tmp_path):
    monkeypatch.delenv(native.TARGET_ENV, raising=False)  # the compiler is what is missing, whatever the target
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("GENFRAME_KERNEL_CACHE", str(tmp_path / "kernels"))
    monkeypatch.setattr(native, "_loaded", {})
    monkeypatch.setattr(native, "_loaded_errors", {})
    model = make_net()
    init = torch.rand((8, 1, 32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1
    with pytest.warns(RuntimeWarning, match="native SGLD step unavailable"):
        assert SGLDSampler().implementation(model, init) == "fused"
    out, _ = run("auto", model, init, 10)
    ref, _ = run("autograd", model, init, 10)
    assert (out.images - ref.images).abs().max() <= CHAIN_TOL
    with pytest.raises(RuntimeError, match="cannot be built"):
        SGLDSampler(impl="native").sample(model, init, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_device_choice(device, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # compare the chains' arithmetic in fp32
    model = make_net().to(device)
    init = torch.rand((4, 1, 32, 32), device=device) * 2 - 1
    expected = ("native", "fused") if device == "cpu" else ("cudagraph",)
    assert SGLDSampler().implementation(model, init) in expected
    out, _ = run("fused", model, init, 8)  # the hand-written path itself runs on every device
    ref, _ = run("autograd", model, init, 8)
    assert (out.images - ref.images).abs().max() <= CHAIN_TOL
    if device != "cpu":
        with pytest.raises(ValueError, match="CPU only"):
            SGLDSampler(impl="native").sample(model, init, 1)


def test_bad_impl_is_a_clear_error():
    with pytest.raises(ValueError, match="impl must be one of"):
        SGLDSampler(impl="fast")


def test_a_failing_worker_raises_instead_of_hanging(monkeypatch):
    import threading

    from genframe_ebm.backends.threaded import ThreadedChains

    original = ThreadedChains.run_chunk

    def flaky(self, x, noise, t0, snapshot):
        if t0 > 0 and threading.current_thread().name.endswith("_0"):  # one worker fails in a later block
            raise RuntimeError("boom")
        return original(self, x, noise, t0, snapshot)

    monkeypatch.setattr(ThreadedChains, "run_chunk", flaky)
    model = make_net()
    init = torch.rand((16, 1, 32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1
    sampler = SGLDSampler(threads=2)
    with pytest.raises(RuntimeError, match="boom"):
        sampler.sample(model, init, 40)
    monkeypatch.setattr(ThreadedChains, "run_chunk", original)
    assert sampler.sample(model, init, 5).images.shape == init.shape  # the pool still works afterwards


def test_a_shape_the_native_kernel_does_not_cover_is_named_once_with_its_cost(monkeypatch):
    from genframe_ebm.backends import select

    monkeypatch.setattr(select, "_told", set())
    model = make_net(in_channels=3)
    init = torch.rand((4, 3, 32, 32)) * 2 - 1
    with pytest.warns(UserWarning, match=r"3x32x32 images run the ATen path .* measured 2.8x slower"):
        assert SGLDSampler().implementation(model, init) == "fused"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: the second time is silent
        SGLDSampler().sample(model, init, 2)


@on_path("native")
def test_chains_use_as_many_workers_as_torch_has_threads(monkeypatch):
    from genframe_ebm.backends import threaded

    if not threaded.threads_available():
        pytest.skip("torch without OpenMP runs one chunk")
    sizes = []
    original = threaded.worker_pool
    monkeypatch.setattr(threaded, "worker_pool", lambda size: sizes.append(size) or original(size))
    model = make_net()
    init = torch.rand((64, 1, 32, 32), generator=torch.Generator().manual_seed(0)) * 2 - 1
    keep = torch.get_num_threads()  # other tests may have left it at 1
    torch.set_num_threads(2)
    try:
        SGLDSampler(impl="native").sample(model, init, 2)
        assert sizes and set(sizes) == {2}
        assert torch.get_num_threads() == 2  # the caller's count is back afterwards
    finally:
        torch.set_num_threads(keep)


def test_an_old_module_path_still_imports_with_a_deprecation_warning(monkeypatch):
    import importlib
    import sys

    import genframe

    monkeypatch.delitem(sys.modules, "genframe_ebm.native", raising=False)  # a fresh import, whatever ran before
    with pytest.warns(genframe.GenframeDeprecationWarning, match="genframe_ebm.native .* genframe_ebm.backends.native"):
        old = importlib.import_module("genframe_ebm.native")
    assert old is native and old.load is native.load
