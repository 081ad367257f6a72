"""Where a fast-recipe training step's time goes: the Langevin chains, the R1 penalty, the backward pass, the
Adam update and the rest (the forward of real and fake images, the loss, the replay buffer), per step.

    python benchmarks/step_profile.py                       # 5 rounds of 8 steps (about a minute), bf16 chains
    python benchmarks/step_profile.py --rounds 1 --steps 4  # smoke run
    python benchmarks/step_profile.py --ops 12              # also torch.profiler's 12 costliest operators
    python benchmarks/step_profile.py --set sampler.precision=fp32 --out benchmarks/results/step_profile.json

The trainer is the recipe's own (``examples/ebm_mnist_fast.toml`` built by the ``ebm`` recipe, the sampler on
its automatic implementation), stepped on real MNIST batches when found ($GENFRAME_DATA_DIR), else uniform noise
(the cost does not depend on the pixels). Each phase is timed by wrapping the call that does it
(``sampler.sample``, ``r1_penalty``, ``Tensor.backward``, ``optimizer.step``), so the step is exactly
``CDTrainer.train_step``; the rest is the step's time less those. Steps come in rounds of a multiple of the
recipe's ``r1_every``, so each round holds the same share of R1 steps; the figures are the round whose total
is the median's.
Writes JSON (--out): the issue-29 profile "before" the step is sped up.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

from genframe.util.openmp import spin_less

spin_less()  # as the genframe command does, before torch loads (GOMP_SPINCOUNT=300000 in the shell: libgomp's default)
import torch  # noqa: E402

import genframe  # noqa: E402
import genframe_ebm.trainer as trainer_module  # noqa: E402
from genframe.plugins.recipes import get_recipe  # noqa: E402

from sgld_throughput import machine  # noqa: E402
from train_throughput import data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "step_profile.json"
PHASES = ("chains", "r1 penalty (forward, grad)", "backward", "adam", "rest")


class PhaseClock:
    """Seconds spent inside wrapped calls, by phase; a call inside another phase's call counts for the outer."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.inside = False

    def wrap(self, phase: str, function):
        def timed(*args, **kwargs):
            if self.inside:
                return function(*args, **kwargs)
            self.inside, start = True, time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self.inside = False
        return timed


def build_trainer(batch: int | None, overrides: list[str] = ()):
    config = genframe.recipe_config("ebm", REPO / "examples" / "ebm_mnist_fast.toml", list(overrides))
    if batch:
        config = config.model_copy(update={"trainer": config.trainer.model_copy(update={"batch_size": batch})})
    recipe = get_recipe("ebm")
    torch.manual_seed(0)
    model, sampler = recipe.build_model(config), recipe.build_sampler(config)
    return recipe.build_trainer(config, model, sampler, torch.device("cpu")), config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="steps per round, rounded up to a multiple of r1_every")
    parser.add_argument("--batch", type=int, default=None, help="[default: the recipe's]")
    parser.add_argument("--ops", type=int, default=0, help="print torch.profiler's N costliest operators too")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe setting, e.g. sampler.precision=bf16")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    trainer, config = build_trainer(args.batch, args.overrides)
    batch = config.trainer.batch_size
    every = max(config.trainer.r1_every, 1)
    steps = -(-args.steps // every) * every
    next_batch, source = data(batch)
    clock = PhaseClock()
    trainer.sampler.sample = clock.wrap("chains", trainer.sampler.sample)
    trainer.optimizer.step = clock.wrap("adam", trainer.optimizer.step)
    ran_as = trainer.sampler.implementation(trainer.model, torch.zeros(batch, 1, 32, 32))
    print(f"{machine()['cpu']}, torch {torch.__version__}, {torch.get_num_threads()} threads; data: {source}; "
          f"the fast recipe's step: batch {batch}, {config.sampler.steps} Langevin steps ({ran_as}), "
          f"R1 every {every} steps; {args.rounds} rounds of {steps} steps; "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT')}")
    original_r1, original_backward = trainer_module.r1_penalty, torch.Tensor.backward
    try:
        trainer_module.r1_penalty = clock.wrap("r1 penalty (forward, grad)", original_r1)
        torch.Tensor.backward = clock.wrap("backward", original_backward)
        for _ in range(every):  # warm-up: kernel build, first allocations, one R1 step
            trainer.step(next_batch())
        rounds = []
        for _ in range(args.rounds):
            clock.seconds.clear()
            start = time.perf_counter()
            for _ in range(steps):
                trainer.step(next_batch())
            total = (time.perf_counter() - start) / steps
            share = {phase: clock.seconds[phase] / steps for phase in PHASES if phase != "rest"}
            share["rest"] = total - sum(share.values())
            rounds.append({"total": total, **share})
        if args.ops:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(every):
                    trainer.step(next_batch())
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.ops))
    finally:
        trainer_module.r1_penalty, torch.Tensor.backward = original_r1, original_backward

    median = sorted(rounds, key=lambda r: r["total"])[len(rounds) // 2]  # the median round, whose phases add up
    print(f"{'phase':30s} {'ms/step':>8s} {'share':>6s}")
    for phase in (*PHASES, "total"):
        print(f"{phase:30s} {1000 * median[phase]:8.1f} {median[phase] / median['total']:6.1%}")
    report = {"benchmark": "step_profile", "machine": machine(), "data": source, "sampler_impl": ran_as,
              "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
              "settings": {"recipe": "examples/ebm_mnist_fast.toml", "overrides": args.overrides, "batch": batch, "sgld_steps": config.sampler.steps,
                           "r1_every": every, "rounds": args.rounds, "steps_per_round": steps},
              "median_round_seconds_per_step": {k: round(v, 5) for k, v in median.items()},
              "rounds": [{k: round(v, 5) for k, v in r.items()} for r in rounds]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
