"""SGLD and training throughput on a CUDA GPU: the plain eager loop against genframe's CUDA graphs.

    python benchmarks/sgld_cuda.py                       # batches 128, 1024, 8192, then one reference epoch
    python benchmarks/sgld_cuda.py --batch-sizes 128 --steps 60 --rounds 3 --no-epoch   # quick

Both variants run the reference Swish CNN with the same weights, batch and noise (step 10, noise 0.005,
clip 0.03): "plain" is the loop a user would write (autograd.grad per step, frozen weights); "genframe"
is ``SGLDSampler`` with ``impl="cudagraph"``. Timed with CUDA events after a warm-up (which includes the
graph capture), in alternating rounds; figures are medians. TFLOP/s counts 3.42 MFLOP per image-step
(forward plus input gradient). The epoch is the reference recipe's (468 steps of batch 128, 60 SGLD steps
each) with ``CDTrainer`` on the GPU, data and replay buffer on the device. Needs only torch and the ebm
plugin's modules (no W&B); writes JSON (--out).

"reproducible" is the same graphed sampler under genframe's reproducible_kernels (cuDNN's deterministic
algorithms, as genframe trains and samples), so the price of bit-exact resumes on a GPU is on record too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from functools import partial
from pathlib import Path

import torch

from genframe.util.reproducible import reproducible_kernels
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler

FLOP_PER_IMAGE_STEP = 0.438e9 / 128
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sgld_cuda.json"


def plain_sgld(model, x, steps, generator):
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(steps):
        x = (x + 0.005 * torch.randn(x.shape, generator=generator, device=x.device)).clamp(-1, 1).requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).sum(), x)
        x = (x.detach() + 10.0 * grad.clamp(-0.03, 0.03)).clamp(-1, 1)
    return x


def reproducibly(run):
    with reproducible_kernels():
        return run()


def timed(run) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000


def sgld_table(batch_sizes, steps, rounds) -> list[dict]:
    torch.manual_seed(0)
    model = SwishEnergyNet().cuda()
    graphed = SGLDSampler(impl="cudagraph", steps=steps)
    graphed_reproducibly = SGLDSampler(impl="cudagraph", steps=steps)  # its own graphs, captured deterministic
    rows = []
    for batch in batch_sizes:
        init = torch.rand((batch, 1, 32, 32), device="cuda") * 2 - 1
        generator = torch.Generator(device="cuda").manual_seed(0)
        variants = {"plain": partial(plain_sgld, model, init, steps, generator),
                    "genframe": partial(graphed.sample, model, init, generator=generator),
                    "reproducible": partial(reproducibly, partial(graphed_reproducibly.sample, model, init,
                                                                  generator=generator))}
        for run in variants.values():  # warm-up: cuDNN autotuning, graph capture
            run()
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for round_index in range(rounds):
            for name in (list(variants) if round_index % 2 == 0 else list(variants)[::-1]):
                seconds[name].append(timed(variants[name]))
        rate = {name: batch * steps / statistics.median(s) for name, s in seconds.items()}
        row = {"batch": batch, "steps": steps, **{f"{k}_img_steps_per_s": round(v) for k, v in rate.items()},
               "ratio": round(statistics.median(p / g for p, g in zip(seconds["plain"], seconds["genframe"])), 2),
               "reproducible_ratio": round(statistics.median(
                   p / g for p, g in zip(seconds["plain"], seconds["reproducible"])), 2),
               "genframe_tflops": round(rate["genframe"] * FLOP_PER_IMAGE_STEP / 1e12, 2),
               "plain_tflops": round(rate["plain"] * FLOP_PER_IMAGE_STEP / 1e12, 2)}
        print(f"batch {batch:5d}: plain {row['plain_img_steps_per_s']:>12,} img-steps/s, genframe "
              f"{row['genframe_img_steps_per_s']:>12,} ({row['ratio']:.2f}x), {row['genframe_tflops']:.2f} TFLOP/s "
              f"(plain {row['plain_tflops']:.2f}); reproducible {row['reproducible_img_steps_per_s']:>12,} "
              f"({row['reproducible_ratio']:.2f}x)", flush=True)
        rows.append(row)
    return rows


def reference_epoch_seconds(steps_per_epoch: int = 468, reproducible: bool = False) -> float:
    from genframe_ebm.config import EBMConfig
    from genframe_ebm.trainer import CDTrainer

    config = EBMConfig(recipe="ebm")
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = SwishEnergyNet().to(device)
    sampler = SGLDSampler.from_config(config.sampler, (1, 32, 32))
    trainer = CDTrainer(model, sampler, config, device, seed=0)
    data = torch.rand((steps_per_epoch * 128, 1, 32, 32), device=device) * 2 - 1  # cost does not depend on pixels
    def epoch():
        for i in range(steps_per_epoch):
            trainer.step(data[i * 128:(i + 1) * 128])

    with reproducible_kernels() if reproducible else contextlib.nullcontext():
        for i in range(3):
            trainer.step(data[i * 128:(i + 1) * 128])  # warm-up and capture
        return timed(epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024, 8192])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-epoch", action="store_true", help="skip the reference-epoch timing")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("sgld_cuda.py needs a CUDA GPU; benchmarks/sgld_throughput.py measures the CPU")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
              "sgld": sgld_table(args.batch_sizes, args.steps, args.rounds)}
    if not args.no_epoch:
        result["reference_epoch_seconds"] = round(reference_epoch_seconds(), 2)
        result["reference_epoch_seconds_reproducible"] = round(reference_epoch_seconds(reproducible=True), 2)
        print(f"reference epoch (468 steps x 60 SGLD steps, batch 128): {result['reference_epoch_seconds']} s, "
              f"reproducible {result['reference_epoch_seconds_reproducible']} s")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
