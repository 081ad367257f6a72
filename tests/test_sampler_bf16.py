"""The native kernel with bf16 products (sampler.precision = "bf16") against the fp32 arithmetic.

bf16 keeps 8 bits of mantissa (a relative rounding of at most 2^-9 = 0.2%) and the kernel rounds the
image, each conv's weights, activations and fed-back gradients, so its input gradient is not the fp32
one: measured 0.47% apart (relative L2) on the reference net, 99.9% of signs alike. The tolerances
below come from those measurements; the chain test holds bf16 to what matters for sampling: after the
fast recipe's 30 large steps, without noise, its chains must stay closer to the fp32 chains than a
second draw of the Langevin noise takes the fp32 chains (measured 0.07x that spread here, 0.5x on the
trained fast-recipe model). The bf16 kernels draw their own noise, so it is tested as noise: Gaussian,
independent across pixels, images and calls, and the same whichever worker runs an image.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from genframe_ebm.backends import native, select
from genframe_ebm.backends.swish_plan import SwishPlan
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from sampler_paths import on_path
from torch import nn

needs_bf16 = on_path("native-bf16")
ARCHS = [{}, {"image_size": 64, "channels": [32, 16, 48], "kernel_sizes": [3, 7, 3], "hidden": 32}]
FAST = {"step_size": 100.0, "noise": 0.005, "grad_clip": 0.03}  # the fast recipe's Langevin settings


def make_net(seed: int = 0, **kwargs) -> SwishEnergyNet:
    torch.manual_seed(seed)
    net = SwishEnergyNet(**kwargs)
    with torch.no_grad():  # nonzero biases, as after training
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.bias.normal_(0, 0.1)
    return net


def kernel_gradient(net: SwishEnergyNet, x: torch.Tensor, precision: str) -> torch.Tensor:
    """d score / dx from one native step with no noise, no clipping and a step small enough to stay unclamped."""
    plan = SwishPlan.for_model(net, tuple(x.shape[1:]))
    kernels = native.load(plan.native_spec(precision), required=True)
    weights = plan.weights(native=True, precision=precision)
    y = x.clone()
    step = 0.1 / float(autograd_gradient(net, x).abs().max())  # moves no pixel by more than ~0.1: x stays in [-1, 1]
    kernels.step(y, None, kernels.pointers(weights.native), torch.zeros(kernels.workspace_floats), step, 1e9)
    return (y - x) / step


def autograd_gradient(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(net(x).sum(), x)[0]


@needs_bf16
@pytest.mark.parametrize("arch", ARCHS)
def test_bf16_gradient_is_the_fp32_gradient_within_bf16_rounding(arch):
    net = make_net(**arch)
    size = arch.get("image_size", 32)
    x = (torch.rand((16, 1, size, size), generator=torch.Generator().manual_seed(1)) * 2 - 1) * 0.8
    exact = autograd_gradient(net, x)
    fp32, bf16 = kernel_gradient(net, x, "fp32"), kernel_gradient(net, x, "bf16")
    relative = lambda g: float((g - exact).norm() / exact.norm())
    assert relative(fp32) < 1e-4  # the fp32 kernel: float rounding only
    assert 1e-3 < relative(bf16) < 0.02  # bf16 products are really used, and within bf16's rounding
    assert float((bf16.sign() == exact.sign()).float().mean()) > 0.99


@needs_bf16
def test_bf16_chains_stay_closer_to_fp32_than_another_noise_draw():
    net = make_net()
    init = torch.rand((64, 1, 32, 32), generator=torch.Generator().manual_seed(2)) * 2 - 1

    def chains(precision: str, seed: int, noise: float = FAST["noise"]) -> torch.Tensor:
        sampler = SGLDSampler(**{**FAST, "noise": noise}, impl="native", precision=precision)
        assert sampler.backend(net, init).kernels.spec.precision == precision
        return sampler.sample(net, init, 30, generator=torch.Generator().manual_seed(seed)).images

    assert SGLDSampler(impl="native", precision="bf16").implementation(net, init) == "native-bf16"
    precision_gap = float((chains("bf16", 0, noise=0.0) - chains("fp32", 0, noise=0.0)).abs().mean())
    noise_gap = float((chains("fp32", 1) - chains("fp32", 0)).abs().mean())
    assert 0 < precision_gap < 0.75 * noise_gap, (precision_gap, noise_gap)


@needs_bf16
def test_the_kernels_noise_is_gaussian_independent_and_the_same_however_the_chains_are_split():
    net = make_net()
    zeros = torch.zeros((256, 1, 32, 32))
    sampler = SGLDSampler(step_size=0.0, noise=0.005, impl="native", precision="bf16", threads=2)
    generator = torch.Generator().manual_seed(0)
    first = sampler.sample(net, zeros, 1, generator=generator).images  # step size 0: x = noise
    second = sampler.sample(net, zeros, 1, generator=generator).images
    z = first.flatten() / 0.005
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01  # 262144 draws: 5 standard errors
    assert abs(float((z ** 4).mean()) - 3) < 0.1  # Gaussian tails (kurtosis 3)
    assert abs(float((z.abs() < 1).float().mean()) - 0.6827) < 0.005

    def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])

    assert abs(correlation(first[..., 1:], first[..., :-1])) < 0.01  # neighbouring pixels
    assert abs(correlation(first[1:], first[:-1])) < 0.01  # neighbouring images
    assert abs(correlation(first, second)) < 0.01  # the next call
    one_worker = SGLDSampler(step_size=0.0, noise=0.005, impl="native", precision="bf16", threads=1)
    assert torch.equal(one_worker.sample(net, zeros, 1, generator=torch.Generator().manual_seed(0)).images, first)
    halves = [sampler.sample(net, half, 1, generator=torch.Generator().manual_seed(0)).images for half in zeros.split(128)]
    assert torch.equal(halves[0], first[:128]) and not torch.equal(halves[1], first[128:])  # image i's noise is its own


@needs_bf16
def test_bf16_chains_take_one_draw_of_the_generator_per_call():
    net = make_net()
    init = torch.rand((16, 1, 32, 32), generator=torch.Generator().manual_seed(4)) * 2 - 1
    sampler = SGLDSampler(**FAST, impl="native", precision="bf16")
    generator = torch.Generator().manual_seed(7)
    out = sampler.sample(net, init, 10, generator=generator).images
    expected = torch.Generator().manual_seed(7)
    torch.randint(0, 2**32, (1,), generator=expected, dtype=torch.int64)
    assert torch.equal(generator.get_state(), expected.get_state())  # a resumed run continues the same stream
    assert torch.equal(sampler.sample(net, init, 10, generator=torch.Generator().manual_seed(7)).images, out)


@on_path("native")  # fp32 chains on the native kernel: skipped where a forced target cannot build
def test_without_bf16_the_chains_run_fp32_after_one_warning(monkeypatch):
    monkeypatch.setattr(native, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(select, "_told_fp32", set())
    net = make_net()
    init = torch.rand((8, 1, 32, 32), generator=torch.Generator().manual_seed(3)) * 2 - 1
    sampler = SGLDSampler(**FAST, impl="native", precision="bf16")
    with pytest.warns(UserWarning, match=r"precision='bf16' runs fp32 here: this CPU has no AVX-512 BF16"):
        out = sampler.sample(net, init, 5, generator=torch.Generator().manual_seed(0)).images
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        again = sampler.sample(net, init, 5, generator=torch.Generator().manual_seed(0)).images
    fp32 = SGLDSampler(**FAST, impl="native").sample(net, init, 5, generator=torch.Generator().manual_seed(0)).images
    assert torch.equal(out, fp32) and torch.equal(again, fp32)
    assert sampler.implementation(net, init) == "native"


def test_bf16_on_a_path_without_it_says_so_once(monkeypatch):
    monkeypatch.setattr(select, "_told_fp32", set())
    net = make_net()
    init = torch.rand((4, 1, 32, 32)) * 2 - 1
    sampler = SGLDSampler(impl="autograd", precision="bf16")
    with pytest.warns(UserWarning, match="only in the native CPU kernel; these chains run the autograd path"):
        sampler.sample(net, init, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler.sample(net, init, 1)


def test_a_bad_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        SGLDSampler(precision="fp16")


def test_more_threads_than_cores_are_said_and_capped():
    from genframe_ebm.sampler import SGLDSampler

    from genframe import usable_cores

    with pytest.warns(UserWarning, match=rf"sampler.threads=1000 is more than the {usable_cores()} CPU cores"):
        sampler = SGLDSampler(threads=1000)
    assert sampler.worker_threads() == usable_cores()
    assert SGLDSampler(threads=1).worker_threads() == 1  # within the cores: as asked
