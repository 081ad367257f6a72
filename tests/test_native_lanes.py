"""The native kernels in both vector widths, each built for its portable target as GENFRAME_NATIVE_TARGET
forces it: 8 floats for AVX2 (``-march=x86-64-v3``, which every supported CPU runs) and 16 for AVX-512
(``-march=x86-64-v4``, skipped on CPUs without it, naming the missing features).

Each is checked against autograd: the gradient of one step, a 60-step chain against the reference loop
from the same seed, and a short training run end to end. The reference net's conv3 runs several channel
blocks of several vectors at 8 lanes; the 64-pixel net adds 6-vector convs and several column blocks in
the first conv's gradient.
"""

from __future__ import annotations

import re

import pytest
import torch
from conftest import TINY
from genframe_ebm.backends import native, native_src
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from sampler_paths import path_marks

import genframe
from genframe.contracts.errors import ConfigError

CHAIN_TOL = 2e-6  # as tests/test_sampler_fast.py: fp32 rewrites of the same arithmetic
ARCHS = {
    "reference": {},
    "64px, 48 channels": {"image_size": 64, "channels": [16, 48, 32, 64], "kernel_sizes": [5, 3, 5, 3], "hidden": 48},
}


LANES = {"avx2": 8, "avx512": 16}


@pytest.fixture(params=[pytest.param(target, marks=path_marks(f"native-{target}")) for target in LANES])
def lanes(request, monkeypatch):
    """The kernels of one forced target; its vector width."""
    monkeypatch.setenv(native.TARGET_ENV, request.param)
    return LANES[request.param]


def net(arch: dict, seed: int = 0) -> SwishEnergyNet:
    torch.manual_seed(seed)
    model = SwishEnergyNet(**arch)
    with torch.no_grad():  # nonzero biases, as after training
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.bias.normal_(0, 0.05)
    return model


def sample(impl: str, model, init, steps: int, **kwargs):
    sampler = SGLDSampler(impl=impl, example_shape=init.shape[1:], **kwargs)
    return sampler.sample(model, init, steps, generator=torch.Generator().manual_seed(0)).images, sampler


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_one_step_is_the_autograd_gradient(lanes, arch):
    model = net(arch)
    size = arch.get("image_size", 32)
    x = torch.rand((5, 1, size, size), generator=torch.Generator().manual_seed(4)) - 0.5  # no clamping
    probe = x.clone().requires_grad_(True)
    want = torch.autograd.grad(model(probe).sum(), probe)[0]
    step = 0.25 / float(want.abs().max())
    out, sampler = sample("native", model, x, 1, step_size=step, noise=0.0, grad_clip=1e9)
    spec = sampler.backend(model, x).kernels.spec
    assert spec.lanes == lanes and f"-march=x86-64-v{3 if lanes == 8 else 4}" in spec.flags()
    torch.testing.assert_close((out - x) / step, want, rtol=1e-3, atol=2e-4 * float(want.abs().max()))


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_chain_matches_the_reference_loop(lanes, arch):
    model = net(arch, seed=1)
    size = arch.get("image_size", 32)
    init = torch.rand((8, 1, size, size), generator=torch.Generator().manual_seed(1)) * 2 - 1
    ref, _ = sample("autograd", model, init, 60)
    out, _ = sample("native", model, init, 60)
    assert not torch.equal(out, init)
    assert (out - ref).abs().max() <= CHAIN_TOL


def test_a_forced_target_trains_end_to_end(lanes, data_dir, tmp_path, monkeypatch):
    """The sampler's whole job, training and generation, runs on the forced target's kernel."""
    monkeypatch.setattr(native, "_loaded", {})
    result = genframe.train("ebm", overrides=[*TINY, "sampler.impl=native", "trainer.max_steps=3"],
                            run_dir=tmp_path / "run", quiet=True)
    images = genframe.load(tmp_path / "run").sample(n=4, steps=5).images
    assert result.step == 3 and images.shape == (4, 1, 32, 32) and images.abs().max() <= 1
    built = [(spec.target, spec.lanes) for spec, kernels in native._loaded.items() if kernels is not None]
    assert built == [({8: "avx2", 16: "avx512"}[lanes], lanes)]


def test_a_target_this_cpu_lacks_is_refused_and_a_bad_one_is_a_config_error(monkeypatch):
    monkeypatch.setattr(native, "_cpu_flags", lambda: frozenset({"avx", "avx2", "fma", "bmi2", "f16c", "movbe"}))
    monkeypatch.setenv(native.TARGET_ENV, "avx512")
    spec = native.NativeSpec(32, ((1, 16, 5), (16, 32, 3)), 64)
    assert spec.target == "avx512" and spec.lanes == 16
    with pytest.raises(RuntimeError, match="this CPU lacks: avx512f, avx512bw"):
        native._build(spec)
    monkeypatch.setattr(native, "_loaded", {})
    model, x = net({}), torch.zeros((2, 1, 32, 32))
    with pytest.raises(ConfigError, match="lacks: avx512f.*; unset GENFRAME_NATIVE_TARGET, or set it to a target"):
        SGLDSampler(impl="native").sample(model, x, 1)
    monkeypatch.setattr(native, "_loaded", {})
    with pytest.warns(RuntimeWarning, match="native SGLD step unavailable"):  # auto: the ATen path takes over
        assert SGLDSampler().implementation(model, x) == "fused"
    monkeypatch.setenv(native.TARGET_ENV, "sse9")
    with pytest.raises(ConfigError, match="GENFRAME_NATIVE_TARGET='sse9' is not a kernel target; use one of native"):
        native.NativeSpec(32, ((1, 16, 5),), 64)


def test_the_cpu_decides_the_width(monkeypatch):
    monkeypatch.delenv(native.TARGET_ENV, raising=False)  # unforced: this CPU's own build
    native.vector_lanes.cache_clear()
    try:
        monkeypatch.setattr(native, "_cpu_flags", lambda: {"avx", "avx2", "fma"})
        assert native.vector_lanes() == 8
        spec = native.NativeSpec(32, ((1, 16, 5), (16, 32, 3)), 64)
        assert (spec.lanes, native.NativeSpec(32, spec.convs, 64, "bf16").lanes) == (8, 16)  # bf16: AVX-512 only
        native.vector_lanes.cache_clear()
        monkeypatch.setattr(native, "_cpu_flags", lambda: None)  # no /proc/cpuinfo
        assert native.vector_lanes() == 8
        native.vector_lanes.cache_clear()
        monkeypatch.setattr(native, "_cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
        assert native.vector_lanes() == 16
    finally:
        native.vector_lanes.cache_clear()


def test_avx2_blocks_fit_sixteen_registers():
    """At 8 lanes the reference net's conv blocks keep accumulators, weight vectors and a broadcast in 16
    registers; at 16 lanes they are the AVX-512 kernel's as measured (up to 8 positions by all vectors)."""
    # (positions in a row, channel vectors) of the reference net's convs at 8 lanes: conv1 to conv4 forward
    assert [native_src.blocking(8, p, v) for p, v in [(16, 2), (8, 4), (4, 8), (2, 8)]] == [(8, 1), (8, 1), (4, 2),
                                                                                          (2, 4)]
    assert native_src.head_blocking(8, 8, 32) == (1, 8)  # hidden 64 = 8 vectors: one set of z; 8-vector blocks
    assert native_src.blocking(16, 8, 4) == (8, 4) and native_src.head_blocking(16, 4, 16) == (2, 16)
    convs = [(1, 16, 5), (16, 48, 3), (48, 32, 5), (32, 64, 3)]
    blocks = {lanes: re.findall(r"vf acc\[(\d+)\]\[(\d+)\];", native_src.source(64, convs, 48, lanes=lanes))
              for lanes in (8, 16)}
    assert ("8", "3") in blocks[16]  # 48 channels, all 3 vectors in one block: AVX-512's 32 registers hold them
    assert all(int(jb) * int(cbs) + int(cbs) + 2 <= 16 for jb, cbs in blocks[8])  # conv blocks and [K][2] of conv1's
    assert "__m512bh" in native_src.source(64, [(1, 16, 5), (16, 48, 3), (48, 32, 5), (32, 64, 3)], 48, "bf16")
    with pytest.raises(ValueError, match="8 or 16 lanes"):
        native_src.source(32, [(1, 16, 5), (16, 32, 3)], 64, "bf16", lanes=8)
