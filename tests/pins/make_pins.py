"""Record what the shipped EBM recipes do in a few dozen steps, for ``tests/test_recipe_pins.py``.

Run once against the code a pin is taken from (here: commit c1304ec, before the callback core), from
the repository root::

    GENFRAME_DATA_DIR=../shared/datasets python tests/pins/make_pins.py

The evaluations' figures (``eval/*``) are measured with the stored ruler (tests/fixtures/ruler), the
classifier every CPU's tests use; ``--evaluations`` re-measures just those with the code as it is now
(the test's setting names), keeping every other pinned number::

    GENFRAME_DATA_DIR=../shared/datasets python tests/pins/make_pins.py --evaluations

Each scenario is a shipped recipe with overrides that make every policy act within the steps: the
divergence guard rolls back (and, in the fast recipe, finishes on its last good checkpoint), the
settle gate holds checkpoints back, the snapshot mixture takes snapshots, EMA averages, keep-best
writes ``best.pt``. The sampler runs the autograd path, whose arithmetic does not depend on the CPU's
instruction set the way the ``-march=native`` kernel's does. What is recorded: every
``metrics.jsonl`` record (times left out) and, per weight tensor of the trained and the sampling
model, its sum, its sum of squares and its first values.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PINS = HERE / "recipes.json"
TIME_KEYS = ("time", "eval/train_minutes")

# Settings shared by both scenarios: small batches of real MNIST, the CPU-independent sampler path.
COMMON = ["trainer.device=cpu", "sampler.impl=autograd", 'logging.loggers=["jsonl"]', "logging.chain_n=0",
          "logging.sample_n=4", "trainer.val_batch_size=2000"]

# Old keys (the code the pins were taken from) -> what each scenario sets.
SCENARIOS = {
    "reference": {
        "config": "examples/ebm_mnist.toml",
        "overrides": [*COMMON, "data.limit=320", "trainer.batch_size=16", "trainer.max_steps=36",
                      "sampler.steps=5", "sampler.generate_steps=5", "buffer.size=64", "logging.log_every=3",
                      "trainer.checkpoint_every=4", "trainer.ema=0.9",
                      "trainer.cdiv_limit=0.02", "trainer.cdiv_patience=2", "trainer.max_rollbacks=10"],
    },
    "fast": {
        "config": "examples/ebm_mnist_fast.toml",
        "overrides": [*COMMON, "data.limit=640", "trainer.batch_size=32", "trainer.max_steps=40",
                      "trainer.lr_decay_steps=40", "sampler.steps=8", "sampler.generate_steps=8", "buffer.size=32",
                      "logging.log_every=4", "logging.sample_every=20", "trainer.checkpoint_every=3",
                      "trainer.mixture=3", "trainer.mixture_every=4",
                      "trainer.lr=0.0003", "trainer.cdiv_limit=0.2", "trainer.cdiv_patience=2", "trainer.cdiv_settle=0.03",
                      "trainer.max_rollbacks=2", "eval.every_steps=8", "eval.n=100", "eval.steps=8"],
    },
}


def weight_summary(state: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Per tensor: sum, sum of squares and its first four values (float64, as plain numbers)."""
    summary = {}
    for name, tensor in state.items():
        flat = tensor.detach().double().flatten()
        summary[name] = [float(flat.sum()), float(flat.square().sum()), *map(float, flat[:4])]
    return summary


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS} for line in lines]


def run_scenario(name: str, run_dir: Path, overrides_for=None) -> dict:
    """Train scenario ``name`` into ``run_dir``; ``overrides_for`` maps its overrides to other keys."""
    import genframe

    spec = SCENARIOS[name]
    overrides = spec["overrides"] if overrides_for is None else overrides_for(spec["overrides"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = genframe.train("ebm", REPO / spec["config"], overrides, run_dir=run_dir, quiet=True)
            status = result.status
        except genframe.GenframeError as error:
            status = f"{type(error).__name__}: {error}".replace(str(run_dir), "RUN_DIR")
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    pin = {"status": status, "step": state["loop"]["step"], "rollbacks": state["loop"].get("rollbacks", 0),
           "best_step": state.get("callbacks", {}).get("keep_best", {}).get("step", state["loop"].get("best_step")), "records": records(run_dir),
           "model": weight_summary(state["model"])}
    if "sampling_model" in state:
        pin["sampling_model"] = weight_summary(state["sampling_model"])
    return pin


def repin_evaluations() -> None:
    """Replace only the ``eval/*`` figures of the pins, measured with the stored ruler by the code as it is now."""
    sys.path.insert(0, str(HERE.parent))
    import conftest  # noqa: F401  (seeds a fresh classifier cache with the stored ruler)
    from test_recipe_pins import new_overrides

    torch.set_num_threads(1)
    pins = json.loads(PINS.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        for name, pin in pins.items():
            fresh = run_scenario(name, Path(tmp) / name, new_overrides)
            assert len(fresh["records"]) == len(pin["records"]), f"{name}: the run itself changed; re-pin it whole"
            for old, new in zip(pin["records"], fresh["records"]):
                old.update({key: value for key, value in new.items() if key.startswith("eval/")})
    PINS.write_text(json.dumps(pins, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    if sys.argv[1:] == ["--evaluations"]:
        return repin_evaluations()
    torch.set_num_threads(1)
    pins = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in SCENARIOS:
            pins[name] = run_scenario(name, Path(tmp) / name)
            print(name, pins[name]["status"], "step", pins[name]["step"], "rollbacks", pins[name]["rollbacks"],
                  "best", pins[name]["best_step"], "events",
                  [r.get("reason", "")[:90] for r in pins[name]["records"] if "event" in r], file=sys.stderr)
    PINS.write_text(json.dumps(pins, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
