"""SGLD throughput: genframe's sampler against a plain eager PyTorch loop and TorchEBM, in one process.

    python benchmarks/sgld_throughput.py                     # batches 32, 128, 512 (about a minute)
    python benchmarks/sgld_throughput.py --batch-sizes 128 --rounds 3 --steps 5   # smoke run
    python benchmarks/sgld_throughput.py --channels 3 --size 32 64 --impls auto --no-torchebm   # colour images
    python benchmarks/sgld_throughput.py --impls native --precision fp32 bf16 --no-torchebm --out results/sgld_bf16.json
    python benchmarks/sgld_throughput.py --impls native fused --lanes 16 8 --batch-sizes 128 --no-torchebm   # AVX2

All variants run the reference Swish CNN with the same weights, batch, steps and noise level:
- plain: the loop a user would write (below): x += noise * randn; clamp; g = autograd.grad(score.sum(), x)
  with frozen weights; clip g to +-0.03; x += 10 * g; clamp.
- genframe: ``SGLDSampler`` as training and generation use it (``sampler.impl = auto``); more with --impls;
  --lanes builds the native kernels in vectors of 16 or 8 floats whatever this CPU is (default: its own).
- torchebm: TorchEBM's ``LangevinDynamics`` (``pip install --no-deps torchebm``, the ``bench`` extra),
  on the same net as energy -score, step size 10, noise std 0.005, clamp [-1, 1]. What differs: it has no
  gradient clipping and adds the noise after the gradient step (x += eta * grad + noise; one clamp),
  so its chains are not comparable sample for sample; the work per step (one forward, one input
  gradient) is the same.
The machine is shared and noisy, so the variants run interleaved, in rounds (order rotated each
round), and the figures are medians; "ratio" is the median over rounds of genframe / plain measured
in the same round. GFLOP/s counts the forward pass's FLOPs twice per image-step (forward + input
gradient; 3.42 MFLOP at 1x32x32). ``--channels`` and ``--size`` time the same net on other image shapes
(its first conv takes the channels; the stride-2 convs keep the flattened size in step with the image). Also checks how far genframe's chain is from the plain loop's after --check-steps steps
from the same seed. Writes everything as JSON (--out).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from genframe_ebm.backends import native
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler


def flop_per_image_step(model, shape) -> float:
    """The forward pass's FLOPs, twice (forward + input gradient): 3.42 MFLOP at 1x32x32."""
    flops, size = 0, shape[-1]
    for layer in model.net:
        if isinstance(layer, torch.nn.Conv2d):
            size = (size + 2 * layer.padding[0] - layer.kernel_size[0]) // layer.stride[0] + 1
            flops += 2 * layer.in_channels * layer.out_channels * layer.kernel_size[0] ** 2 * size * size
        elif isinstance(layer, torch.nn.Linear):
            flops += 2 * layer.in_features * layer.out_features
    return 2.0 * flops
STEP_SIZE, NOISE, CLIP = 10.0, 0.005, 0.03
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sgld_throughput.json"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_details() -> str:
    """Family/model and vector ISA: a VM often shows only "AMD EPYC" as the name."""
    try:
        info = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
        flags = info.get("flags", "").split()
        isa = next((f for f in ("avx512f", "avx2", "neon", "asimd") if f in flags), "?")
        family, model, mhz = info.get("cpu family", "?"), info.get("model", "?"), info.get("cpu MHz", "?")
        return f"family {family} model {model}, {isa}, {mhz} MHz"
    except OSError:
        return platform.machine()


def machine() -> dict:
    return {"cpu": cpu_name(), "cpu_details": cpu_details(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None}


@contextlib.contextmanager
def kernel_lanes(lanes: int | None):
    """Native kernels built in vectors of ``lanes`` floats (None: this CPU's), as another CPU would get them."""
    saved = native.vector_lanes
    if lanes is not None:
        native.vector_lanes = lambda: lanes
    try:
        yield
    finally:
        native.vector_lanes = saved


def genframe_runner(sampler, model, lanes: int | None):
    def run(x, steps, generator):
        with kernel_lanes(lanes):
            return sampler.sample(model, x, steps, generator=generator).images
    return run


def plain_sgld(model, x, steps, generator):
    """The plain eager reference loop."""
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(steps):
        x = x + NOISE * torch.randn(x.shape, generator=generator)
        x = x.clamp(-1.0, 1.0).requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(model(x).sum(), x)
        x = (x.detach() + STEP_SIZE * grad.clamp(-CLIP, CLIP)).clamp(-1.0, 1.0)
    return x


def torchebm_runner(model):
    """TorchEBM's LangevinDynamics on the same net, or the reason it cannot run."""
    try:
        from torchebm.core import BaseModel
        from torchebm.samplers import LangevinDynamics
    except Exception as exc:  # not installed, or its torch requirement not met
        return None, f"skipped: torchebm does not import ({type(exc).__name__}: {exc})"

    class Energy(BaseModel):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return -self.net(x)

    try:
        # x += eta * (-grad E) + sqrt(2 * eta) * noise_scale * N(0, 1): noise std 0.005 at eta = 10
        sampler = LangevinDynamics(Energy(model), step_size=STEP_SIZE, noise_scale=NOISE / (2 * STEP_SIZE) ** 0.5,
                                   clamp=(-1.0, 1.0), device="cpu")
        sampler.sample(x=torch.zeros(2, 1, 32, 32), n_steps=1)
    except Exception as exc:  # its API moved
        return None, f"skipped: torchebm's LangevinDynamics API differs ({type(exc).__name__}: {exc})"

    def run(x, steps, generator):
        return sampler.sample(x=x, n_steps=steps, generator=generator)
    return run, "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--steps", type=int, default=20, help="SGLD steps per timed run")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--impls", nargs="+", default=["auto"], help="genframe sampler.impl values to time")
    parser.add_argument("--threads", type=int, default=None, help="sampler.threads (default: torch's)")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                        help="sampler.precision values to time for each impl (bf16: the native kernel's bf16 products)")
    parser.add_argument("--lanes", type=int, nargs="+", choices=[8, 16], default=[None],
                        help="floats per vector of the native kernels to time (default: this CPU's; 16 on an AVX2 CPU "
                             "is the code an AVX-512 one gets)")
    parser.add_argument("--no-torchebm", action="store_true")
    parser.add_argument("--check-steps", type=int, default=60, help="steps for the chain-deviation check")
    parser.add_argument("--channels", type=int, default=1, help="image channels (1: MNIST; 3: colour)")
    parser.add_argument("--size", type=int, nargs="+", default=[32], help="image sides to time, e.g. 32 64")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    results, deviations, ran_as, torchebm_status = [], [], {}, "not requested"
    for size in args.size:
        shape = (args.channels, size, size)
        torch.manual_seed(0)
        model = SwishEnergyNet(in_channels=args.channels, image_size=size)
        flop = flop_per_image_step(model, shape)
        variants = {"plain": lambda x, steps, g, m=model: plain_sgld(m, x, steps, g)}
        for impl, precision, lanes in itertools.product(args.impls, args.precision, args.lanes):
            width_matters = impl in ("auto", "native") and precision == "fp32"  # bf16 kernels: 16 lanes always
            if not width_matters and lanes != args.lanes[0]:
                continue  # the same variant again
            sampler = SGLDSampler(STEP_SIZE, NOISE, CLIP, impl=impl, threads=args.threads, precision=precision)
            name = (("genframe" if impl == "auto" else f"genframe-{impl}")
                    + (f"-{lanes}lanes" if width_matters and lanes is not None else "")
                    + ("" if precision == "fp32" else f"-{precision}"))
            with kernel_lanes(lanes):
                example = torch.zeros(args.batch_sizes[0], *shape)
                kernels = getattr(sampler.backend(model, example), "kernels", None)  # the native backend's
                ran_as[f"{name} {'x'.join(map(str, shape))}"] = (sampler.implementation(model, example) + (
                    "" if kernels is None else f" ({kernels.spec.lanes} lanes)"))
            variants[name] = genframe_runner(sampler, model, lanes)
        if not args.no_torchebm:
            run, torchebm_status = torchebm_runner(model)
            if run is not None:
                variants["torchebm"] = run
        print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"images {'x'.join(map(str, shape))}; genframe runs as {ran_as}; torchebm: {torchebm_status}")
        for batch in args.batch_sizes:
            init = torch.rand((batch, *shape), generator=torch.Generator().manual_seed(batch)) * 2 - 1
            for run in variants.values():  # warm-up: kernel build and caches, oneDNN primitives
                run(init, 2, torch.Generator().manual_seed(0))
            rates = {name: [] for name in variants}
            names = list(variants)
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    start = time.perf_counter()
                    variants[name](init, args.steps, torch.Generator().manual_seed(r))
                    rates[name].append(batch * args.steps / (time.perf_counter() - start))
            for name, values in rates.items():
                ratio = statistics.median(v / p for v, p in zip(values, rates["plain"]))
                rate = statistics.median(values)
                row = {"shape": list(shape), "batch": batch, "variant": name, "img_steps_per_s": round(rate),
                       "ratio_vs_plain": round(ratio, 2), "gflops": round(rate * flop / 1e9, 1),
                       "rounds": [round(v) for v in values]}
                fp32 = name.removesuffix("-bf16")
                if fp32 != name and fp32 in rates:  # bf16 against its own fp32 path, round by round
                    row["ratio_vs_fp32"] = round(statistics.median(v / f for v, f in zip(values, rates[fp32])), 2)
                results.append(row)
                versus = f"  x{row['ratio_vs_fp32']:4.2f} vs {fp32}" if "ratio_vs_fp32" in row else ""
                print(f"{'x'.join(map(str, shape)):>8} batch {batch:4d}  {name:18s} {rate:9.0f} img-steps/s  "
                      f"x{ratio:4.2f}  {rate * flop / 1e9:6.1f} GFLOP/s{versus}")
            reference = plain_sgld(model, init, args.check_steps, torch.Generator().manual_seed(1))
            for name in variants:
                if name.startswith("genframe"):
                    out = variants[name](init, args.check_steps, torch.Generator().manual_seed(1))
                    dev = float((out - reference).abs().max())
                    deviations.append({"shape": list(shape), "batch": batch, "variant": name,
                                       "steps": args.check_steps, "max_abs_diff": dev})
                    print(f"{'x'.join(map(str, shape)):>8} batch {batch:4d}  {name:18s} max |x - x_plain| after "
                          f"{args.check_steps} steps: {dev:.2e}")

    report = {"benchmark": "sgld_throughput", "machine": machine(),
              "settings": {"steps": args.steps, "rounds": args.rounds, "step_size": STEP_SIZE, "noise": NOISE,
                           "grad_clip": CLIP, "channels": args.channels, "sizes": args.size,
                           "cpu_native_lanes": native.vector_lanes()},
              "genframe_impl": ran_as, "torchebm": torchebm_status,
              "torchebm_differences": "no gradient clipping; noise added after the gradient step, one clamp per step",
              "results": results, "deviation_vs_plain": deviations}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
