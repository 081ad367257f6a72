"""Training throughput: seconds per step (and per epoch) of the reference EBM recipe, genframe's
CDTrainer against a plain PyTorch train step written here, in one process.

    python benchmarks/train_throughput.py                    # batch 128, 60 SGLD steps (a few minutes)
    python benchmarks/train_throughput.py --rounds 2 --steps-per-round 1 --sgld-steps 5   # smoke run

Both do the reference train step: draw 128 chains from an 8192-image replay buffer (5% restarted from
uniform noise), 60 SGLD steps (noise 0.005, clip 0.03, step 10), push them back, then
loss = mean(fake) - mean(real) + 0.1 * mean(real^2 + fake^2) and one Adam step (lr 1e-4). The plain
step samples with the plain eager loop (autograd.grad, frozen weights); genframe's is
``CDTrainer.train_step`` with the default config (``sampler.impl = auto``). Real MNIST batches are
used when found ($GENFRAME_DATA_DIR), else uniform noise: the cost does not depend on the pixels.
Variants alternate in rounds (order rotated); figures are medians, the ratio the median of per-round
ratios. An epoch is 468 steps (60,000 images in batches of 128). Writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from genframe_ebm.config import EBMConfig
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from genframe_ebm.trainer import CDTrainer

from sgld_throughput import cpu_name, machine, plain_sgld

STEPS_PER_EPOCH = 468
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "train_throughput.json"


class PlainTrainer:
    """The reference train step as a user would write it in plain PyTorch."""

    def __init__(self, model, batch, buffer_size, sgld_steps, seed=0):
        self.model, self.sgld_steps, self.batch = model, sgld_steps, batch
        self.generator = torch.Generator().manual_seed(seed)
        self.buffer = torch.rand((batch, 1, 32, 32), generator=self.generator) * 2 - 1
        self.buffer_size = buffer_size
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-7)

    def train_step(self, real):
        g = self.generator
        real = (real + 0.005 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
        index = torch.randint(0, self.buffer.shape[0], (self.batch,), generator=g)
        fresh = (torch.rand((self.batch, 1, 1, 1), generator=g) < 0.05)
        start = torch.where(fresh, torch.rand(real.shape, generator=g) * 2 - 1, self.buffer[index])
        fake = plain_sgld(self.model, start, self.sgld_steps, g)
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.buffer = torch.cat([self.buffer, fake])[-self.buffer_size:]
        real_scores, fake_scores = self.model(torch.cat([real, fake])).split(self.batch)
        loss = fake_scores.mean() - real_scores.mean() + 0.1 * (real_scores ** 2 + fake_scores ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    step = train_step  # a whole step, as genframe's Trainer.step (train_step, then apply_update)


def data(batch: int):
    generator = torch.Generator().manual_seed(0)
    try:
        from genframe.data.mnist import MNIST
        images = MNIST("train", download=False).images
    except Exception:  # no data here: pixels do not change the cost
        return (lambda: torch.rand((batch, 1, 32, 32), generator=generator) * 2 - 1), "uniform noise"

    def next_batch():
        return images[torch.randint(0, images.shape[0], (batch,), generator=generator)].float()
    return next_batch, "MNIST"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--sgld-steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps-per-round", type=int, default=3, help="train steps per variant per round")
    parser.add_argument("--impls", nargs="+", default=["auto"], help="genframe sampler.impl values to time")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    next_batch, source = data(args.batch)
    config = EBMConfig.model_validate({"trainer": {"batch_size": args.batch}, "sampler": {"steps": args.sgld_steps}})
    variants, ran_as = {}, {}
    torch.manual_seed(0)
    variants["plain"] = PlainTrainer(SwishEnergyNet(), args.batch, config.buffer.size, args.sgld_steps)
    for impl in args.impls:
        torch.manual_seed(0)
        model = SwishEnergyNet()
        sampler = SGLDSampler.from_config(config.sampler.model_copy(update={"impl": impl}), (1, 32, 32))
        name = "genframe" if impl == "auto" else f"genframe-{impl}"
        variants[name] = CDTrainer(model, sampler, config, torch.device("cpu"), seed=0)
        ran_as[name] = sampler.implementation(model, torch.zeros(args.batch, 1, 32, 32))
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads; data: {source}; "
          f"batch {args.batch}, {args.sgld_steps} SGLD steps per train step; genframe runs as {ran_as}")

    for trainer in variants.values():  # warm-up (kernel build, first allocations)
        trainer.step(next_batch())
    seconds = {name: [] for name in variants}
    names = list(variants)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(args.steps_per_round):
                variants[name].step(next_batch())
            seconds[name].append((time.perf_counter() - start) / args.steps_per_round)
    results = []
    for name, values in seconds.items():
        step = statistics.median(values)
        speedup = statistics.median(p / v for v, p in zip(values, seconds["plain"]))
        results.append({"variant": name, "seconds_per_step": round(step, 4),
                        "seconds_per_epoch": round(step * STEPS_PER_EPOCH, 1), "speedup_vs_plain": round(speedup, 2),
                        "rounds": [round(v, 4) for v in values]})
        print(f"{name:18s} {step:7.3f} s/step  {step * STEPS_PER_EPOCH / 60:6.1f} min/epoch  x{speedup:4.2f}")
    report = {"benchmark": "train_throughput", "machine": machine(), "data": source, "genframe_impl": ran_as,
              "settings": {"batch": args.batch, "sgld_steps": args.sgld_steps, "rounds": args.rounds,
                           "steps_per_round": args.steps_per_round, "steps_per_epoch": STEPS_PER_EPOCH},
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
