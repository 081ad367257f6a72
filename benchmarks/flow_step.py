"""The flow recipe's training step: genframe's FlowTrainer against a plain PyTorch flow-matching step written
here, and memory-layout variants of it, in one process, interleaved in rounds.

    python benchmarks/flow_step.py                                   # batch 64, [16, 32, 32], 5 rounds
    python benchmarks/flow_step.py --channels 16 32 64 --batch 128 --variants plain genframe channels_last
    python benchmarks/flow_step.py --rounds 1 --steps 2              # smoke run

Every variant does the same work: x0 ~ N(0, I), t ~ U(0, 1), x_t = (1 - t) x0 + t x1, loss = mean (v(x_t, t) -
(x1 - x0))^2, backward, clip the gradients' norm to 1, one Adam step. ``plain`` is that step written out here;
``genframe`` is ``FlowTrainer.train_step`` then ``apply_update`` with the recipe's defaults; ``channels_last``
is genframe's step with the net and the batch in the channels-last layout (oneDNN's preferred one on CPU);
``compiled`` is genframe's step with the net through ``torch.compile`` (its compile time is left out: it runs
before the rounds). Real MNIST batches when found ($GENFRAME_DATA_DIR), else noise: the cost does not depend
on the pixels. Figures are medians of each round's mean; ratios are medians of per-round ratios to ``plain``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from genframe_flow.config import FlowConfig
from genframe_flow.trainer import FlowTrainer
from genframe_flow.unet import UNet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sgld_throughput import machine  # noqa: E402 - benchmarks/ is on sys.path

VARIANTS = ("plain", "genframe", "channels_last", "compiled")


def plain_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x1: torch.Tensor) -> None:
    x0 = torch.randn_like(x1)
    t = torch.rand(len(x1))
    xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
    loss = (model(xt, t) - (x1 - x0)).square().mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def make_variant(name: str, channels: list[int], batch: torch.Tensor):
    """(a step function, its batch) for one variant, with its own net and optimizer."""
    torch.manual_seed(0)
    model = UNet(batch.shape[1], tuple(channels), 64)
    if name == "plain":
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        return (lambda x: plain_step(model, optimizer, x)), batch
    if name == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    config = FlowConfig()
    trainer = FlowTrainer(model, config, torch.device("cpu"))
    if name == "compiled":
        trainer.model = torch.compile(model)

    def step(x: torch.Tensor) -> None:
        trainer.train_step(x)
        trainer.apply_update()
    return step, batch


def real_batch(size: int) -> torch.Tensor:
    try:
        from genframe.data.mnist import MNIST

        return MNIST("train", download=False).get_batch(torch.arange(size))
    except Exception:  # no data here: the cost does not depend on the pixels
        return torch.rand(size, 1, 32, 32) * 2 - 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, nargs="+", default=[16, 32, 32])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=["plain", "genframe", "channels_last"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None, help="JSON of every round")
    args = p.parse_args()
    batch = real_batch(args.batch)
    steps = {}
    for name in args.variants:
        steps[name] = make_variant(name, args.channels, batch)
        for _ in range(args.warmup):
            steps[name][0](steps[name][1])
    times: dict[str, list[float]] = {name: [] for name in args.variants}
    for r in range(args.rounds):
        order = args.variants[r % len(args.variants):] + args.variants[:r % len(args.variants)]
        for name in order:
            step, x = steps[name]
            start = time.perf_counter()
            for _ in range(args.steps):
                step(x)
            times[name].append((time.perf_counter() - start) / args.steps)
        print(f"round {r + 1}: " + ", ".join(f"{n} {times[n][-1]:.4f} s" for n in args.variants), flush=True)
    base = "plain" if "plain" in times else args.variants[0]
    result = {"settings": vars(args), "machine": machine(), "variants": {}}
    for name in args.variants:
        ratio = statistics.median(a / b for a, b in zip(times[name], times[base]))
        result["variants"][name] = {"s_per_step": statistics.median(times[name]), "rounds": times[name],
                                    f"ratio_to_{base}": ratio}
        print(f"{name:>14}: {statistics.median(times[name]):.4f} s/step ({ratio:.3f}x {base})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
