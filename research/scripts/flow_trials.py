"""A queue of flow-recipe training trials, each a fixed number of steps, evaluated on one ruler; resumable.

    python research/scripts/flow_trials.py research/scripts/flow_trials.toml --only lr1e-3 \
        --out research/results/flow_trials.json

The plan (TOML) names trials: each gives ``steps``, an optional ``config`` file and ``set`` overrides (a table of
KEY = VALUE as ``genframe run --set`` takes them), an optional ``seed`` and ``data`` (dataset name). Every trial
trains ``genframe run flow`` in ``--runs/NAME`` for exactly its steps (steps, not minutes, so trials that share
the machine keep their budget; the plan's ``s_per_step`` turns them into minutes), then ``genframe eval --n N``
scores the weights it samples with (the EMA's when on). Trials already in ``--out`` are skipped, and a run whose
training was cut off resumes where its last checkpoint left it, so a queue spans sessions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from genframe.util.atomic import atomic_write_text

KEPT = ("fd", "kid", "kid_std", "precision", "recall", "density", "knn_coverage", "confidence", "confident",
        "class_spread")


def overrides(trial: dict) -> list[str]:
    """``--set KEY=VALUE`` words from the trial's ``set`` table (values written as TOML/JSON would read them)."""
    words = []
    for key, value in trial.get("set", {}).items():
        text = value if isinstance(value, str) else json.dumps(value)
        words += ["--set", f"{key}={text}"]
    return words


def train(name: str, trial: dict, run_dir: Path) -> None:
    """Train (or finish training) the trial's run."""
    status = run_dir / "status.json"
    if status.is_file():
        state = json.loads(status.read_text())
        if state.get("status") in ("completed", "finished early") and state.get("step", 0) >= trial["steps"]:
            return
    command = ["genframe", "run", "flow", "--quiet"]
    if (run_dir / "checkpoints" / "last.pt").is_file():
        command += ["--resume", str(run_dir)]
    else:
        command += ["--run-dir", str(run_dir)]
        if "config" in trial:
            command += ["--config", trial["config"]]
        command += overrides(trial)
        command += ["--set", f"trainer.max_steps={trial['steps']}", "--set", "trainer.epochs=1000",
                    "--set", f"seed={trial.get('seed', 0)}", "--set", f"data.name={trial.get('data', 'mnist')}"]
    print(f"[{name}] {' '.join(command)}", flush=True)
    subprocess.run(command, check=True)


def evaluate(run_dir: Path, n: int, nfe: int | None) -> dict:
    command = ["genframe", "eval", str(run_dir), "--n", str(n), "--json"]
    if nfe is not None:
        command += ["--steps", str(nfe)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    return {"step": report["step"], "n": report["n"], "nfe": report["nfe"],
            "seconds_per_1000": report["seconds_per_1000"],
            **{k: round(float(report["samples"][k]), 4) for k in KEPT}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", help="TOML of [trials.NAME] tables")
    p.add_argument("--out", required=True, help="JSON of every finished trial (appended; finished ones skipped)")
    p.add_argument("--runs", default="runs/flow-trials", help="folder of the trials' run directories")
    p.add_argument("--only", nargs="*", default=None, help="run only these trials, in this order")
    p.add_argument("--n", type=int, default=2000, help="samples per evaluation")
    args = p.parse_args()
    plan = tomllib.loads(Path(args.plan).read_text())
    trials = plan["trials"]
    names = args.only if args.only else list(trials)
    unknown = [n for n in names if n not in trials]
    if unknown:
        sys.exit(f"Error: no trial {unknown} in {args.plan}; it has {sorted(trials)}")
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.is_file() else {}
    for name in names:
        if name in done:
            print(f"[{name}] done: fd {done[name]['eval']['fd']}", flush=True)
            continue
        trial, run_dir = trials[name], Path(args.runs) / name
        started = time.monotonic()
        train(name, trial, run_dir)
        result = {"trial": trial, "run_dir": str(run_dir), "wall_minutes": round((time.monotonic() - started) / 60, 2),
                  "eval": evaluate(run_dir, args.n, trial.get("eval_nfe"))}
        if "s_per_step" in plan:
            result["minutes_alone"] = round(trial["steps"] * plan["s_per_step"] / 60, 2)
        done[name] = result
        atomic_write_text(out, json.dumps(done, indent=2) + "\n")
        e = result["eval"]
        print(f"[{name}] fd {e['fd']:.2f} kid {e['kid']:.2f} precision {e['precision']:.3f} recall "
              f"{e['recall']:.3f} confidence {e['confidence']:.3f}", flush=True)


if __name__ == "__main__":
    main()
