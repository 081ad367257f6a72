"""What the training loop costs on top of the train steps: ``genframe.train`` on the fast recipe (its
callbacks on: divergence guard with a limit, settle gate, snapshot mixture, keep-best and evaluation
schedule idle) against a plain loop calling the same recipe's ``train_step`` on the same batches, in
one process, interleaved in rounds.

    python research/scripts/loop_overhead.py                       # 3 rounds of 150 steps (a few minutes)
    python research/scripts/loop_overhead.py --rounds 1 --steps 20  # smoke run

The loop's time per step is read from its own metrics.jsonl (the time between the first and the last
logged record, no start-up, no final pictures); the plain loop is timed around its steps. Run it on
the code before a change (``PYTHONPATH=OLD_CHECKOUT:OLD_CHECKOUT/plugins/ebm``) and after: each
reads the fast recipe file of the checkout it runs from. Writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

import genframe
from genframe.training.runsetup import build_dataset, epoch_permutation

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "loop_overhead.json"
LOG_EVERY = 10


def settings(steps: int) -> list[str]:
    # The recipe's schedules are shares of its run: in these few steps they would evaluate 10000 samples and
    # snapshot at every step, so they keep the cadence of the recipe's 27000 steps (evaluations idle).
    return ["trainer.device=cpu", f"trainer.max_steps={steps}", f"trainer.lr_decay_steps={steps}",
            'logging.loggers=["jsonl"]', f"logging.log_every={LOG_EVERY}", "logging.sample_every=100000",
            "logging.sample_n=4", "logging.chain_n=0", "callbacks.evaluation.every_steps=2700",
            "callbacks.snapshot_mixture.every=500"]


def fast_recipe() -> Path:
    return Path(genframe.__file__).resolve().parents[1] / "examples" / "ebm_mnist_fast.toml"


def loop_seconds_per_step(steps: int, run_dir: Path) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        genframe.train("ebm", fast_recipe(), settings(steps), run_dir=run_dir, quiet=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "loss" in r]
    return (logged[-1]["time"] - logged[0]["time"]) / (logged[-1]["step"] - logged[0]["step"])


def plain_seconds_per_step(steps: int) -> float:
    config = genframe.recipe_config("ebm", fast_recipe(), settings(steps))
    recipe, device = genframe.get_recipe("ebm"), torch.device("cpu")
    torch.manual_seed(config.seed)
    model = recipe.build_model(config)
    trainer = recipe.build_trainer(config, model, recipe.build_sampler(config), device)
    data = build_dataset(genframe.get_host().registry, config.data, "train")
    order, size = epoch_permutation(len(data), config.seed, 0), config.trainer.batch_size
    batches = [data.get_batch(order[i * size : (i + 1) * size]) for i in range(steps)]
    trainer.step(batches[0])  # warm-up, as the loop's first logged record leaves out its first steps
    began = time.perf_counter()
    for batch in batches[1:]:
        for value in trainer.step(batch).values():
            value.detach()
    return (time.perf_counter() - began) / (steps - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            first_loop = index % 2 == 0  # alternate which goes first: the machine is noisy
            loop = plain = 0.0
            for which in (("loop", "plain") if first_loop else ("plain", "loop")):
                if which == "loop":
                    loop = loop_seconds_per_step(args.steps, Path(tmp) / f"run{index}")
                else:
                    plain = plain_seconds_per_step(args.steps)
            rounds.append({"loop_s": loop, "plain_s": plain, "ratio": loop / plain})
            print(f"round {index + 1}: loop {loop * 1000:.1f} ms/step, plain {plain * 1000:.1f} ms/step, "
                  f"ratio {loop / plain:.3f}", flush=True)
    summary = {"steps": args.steps, "threads": 1, "genframe": str(Path(genframe.__file__).parent),
               "loop_ms": 1000 * statistics.median(r["loop_s"] for r in rounds),
               "plain_ms": 1000 * statistics.median(r["plain_s"] for r in rounds),
               "ratio": statistics.median(r["ratio"] for r in rounds), "rounds": rounds}
    print(f"median: loop {summary['loop_ms']:.1f} ms/step, plain {summary['plain_ms']:.1f} ms/step, "
          f"loop / plain {summary['ratio']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
