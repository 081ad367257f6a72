"""A queue of training runs of any recipe, each a fixed number of steps, scored on one ruler; resumable.

    python research/scripts/run_queue.py research/scripts/flow_trials.toml --out research/results/flow_trials.json
    python research/scripts/run_queue.py PLAN.toml --out OUT.json --only NAME1 NAME2   # some, in this order

The plan (TOML) names runs in ``[runs.NAME]`` tables. Each gives ``steps``, or ``minutes`` with ``speed``, the
key of a ``[speeds]`` entry (seconds per step measured alone, e.g. by ``family_speed.py``): steps = minutes * 60
/ speed. Steps, not minutes, so runs that share the machine keep their budget. Each may give a ``recipe`` (else
the plan's), a ``config`` file, ``set`` overrides (a table of KEY = VALUE as ``genframe run --set`` takes them;
a string value starting with ``=`` is worked out from ``steps``, e.g. ``"=steps // 54"``, to fit a schedule to
the budget), a ``seed``, a ``data`` name and an ``eval_steps`` for ``genframe eval --steps``.

Every run trains in ``--runs/NAME``, then ``genframe eval --n N`` scores the weights it samples with. Runs
already in ``--out`` are skipped, and one whose training was cut off resumes from its last checkpoint, so a queue
spans sessions: run the same command again. Queues that share an ``--out`` file each add their finished runs to it
(give them different runs: a run's directory is held by the process training it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from genframe.util.atomic import atomic_write_text

KEPT = ("fd", "kid", "kid_std", "precision", "recall", "density", "knn_coverage", "confidence", "confident",
        "class_spread")


def cpu() -> str:
    """This machine's CPU in a line: name, family and model, whether it has AVX-512 and AMX, core count."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields = dict(line.split(":", 1) for line in info.splitlines()[:30] if ":" in line)
    get = lambda key: fields.get(key.ljust(len(key)), "").strip() or next(  # noqa: E731
        (v.strip() for k, v in fields.items() if k.strip() == key), "?")
    flags = get("flags").split()
    vector = "AMX" if "amx_tile" in flags else "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "?"
    return f"{get('model name')}, family {get('cpu family')} model {get('model')}, {vector}, {os.cpu_count()} cores"


def steps_of(name: str, run: dict, speeds: dict) -> int:
    if "steps" in run:
        return int(run["steps"])
    if "minutes" in run and run.get("speed") in speeds:
        return max(1, round(run["minutes"] * 60 / speeds[run["speed"]]))
    sys.exit(f"Error: run {name!r} needs steps, or minutes with a speed named in [speeds] ({sorted(speeds)})")


def setting(value, steps: int) -> str:
    """One --set value: ``=EXPR`` worked out from ``steps``; other strings as they are; the rest as JSON."""
    if isinstance(value, str) and value.startswith("="):
        return json.dumps(eval(value[1:], {"__builtins__": {}}, {"steps": steps, "max": max, "round": round}))
    return value if isinstance(value, str) else json.dumps(value)


def train(name: str, run: dict, recipe: str, steps: int, run_dir: Path) -> None:
    """Train (or finish training) one run."""
    status = run_dir / "status.json"
    if status.is_file():
        state = json.loads(status.read_text())
        if state.get("status") in ("completed", "finished early") and state.get("step", 0) >= steps:
            return
    command = ["genframe", "run", recipe, "--quiet"]
    if (run_dir / "checkpoints" / "last.pt").is_file():
        command += ["--resume", str(run_dir)]
    else:
        command += ["--run-dir", str(run_dir)]
        if "config" in run:
            command += ["--config", run["config"]]
        for key, value in run.get("set", {}).items():
            command += ["--set", f"{key}={setting(value, steps)}"]
        command += ["--set", f"trainer.max_steps={steps}", "--set", "trainer.epochs=1000",
                    "--set", f"seed={run.get('seed', 0)}", "--set", f"data.name={run.get('data', 'mnist')}"]
    print(f"[{name}] {' '.join(command)}", flush=True)
    subprocess.run(command, check=True)


def evaluate(run_dir: Path, n: int, eval_steps: int | None) -> dict:
    command = ["genframe", "eval", str(run_dir), "--n", str(n), "--json"]
    if eval_steps is not None:
        command += ["--steps", str(eval_steps)]
    report = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return {"step": report["step"], "n": report["n"], "nfe": report.get("nfe"),
            "seconds_per_1000": report.get("seconds_per_1000"),
            **{k: round(float(report["samples"][k]), 4) for k in KEPT}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plan", help="TOML of [runs.NAME] tables")
    p.add_argument("--out", required=True, help="JSON of every finished run (added to; finished ones skipped)")
    p.add_argument("--runs", default="runs/queue", help="folder of the runs' directories")
    p.add_argument("--only", nargs="*", default=None, help="run only these, in this order")
    p.add_argument("--n", type=int, default=2000, help="samples per evaluation")
    p.add_argument("--speeds", default=None, help="family_speed.py's JSON, measured on this machine: its "
                   "s_per_step figures replace the plan's [speeds] of the same labels")
    args = p.parse_args()
    plan = tomllib.loads(Path(args.plan).read_text())
    runs, speeds = plan.get("runs", {}), plan.get("speeds", {})
    if args.speeds:
        measured = json.loads(Path(args.speeds).read_text())
        speeds |= {label: row["s_per_step"] for label, row in measured.items() if isinstance(row, dict)
                   and "s_per_step" in row}
    names = args.only if args.only else list(runs)
    unknown = [n for n in names if n not in runs]
    if unknown:
        sys.exit(f"Error: no run {unknown} in {args.plan}; it has {sorted(runs)}")
    out = Path(args.out)
    done = json.loads(out.read_text()) if out.is_file() else {}
    for name in names:
        if name in done:
            print(f"[{name}] done: fd {done[name]['eval']['fd']}", flush=True)
            continue
        run, run_dir = runs[name], Path(args.runs) / name
        recipe, steps = run.get("recipe", plan.get("recipe", "flow")), steps_of(name, run, speeds)
        started = time.monotonic()
        train(name, run, recipe, steps, run_dir)
        trained = time.monotonic()
        result = {"run": run, "recipe": recipe, "steps": steps, "run_dir": str(run_dir),
                  "eval": evaluate(run_dir, args.n, run.get("eval_steps")),
                  "wall_minutes": {"train": round((trained - started) / 60, 2),
                                   "eval": round((time.monotonic() - trained) / 60, 2)},
                  "cpu": cpu(), "load_average": [round(v, 2) for v in os.getloadavg()]}
        if run.get("speed") in speeds:
            result["s_per_step"] = speeds[run["speed"]]
            result["minutes_alone"] = round(steps * speeds[run["speed"]] / 60, 2)
        if args.speeds:
            result["speeds_from"] = args.speeds
        # added to the file as it is now: another queue may have written its own runs there meanwhile
        done = (json.loads(out.read_text()) if out.is_file() else {}) | {name: result}
        atomic_write_text(out, json.dumps(done, indent=2) + "\n")
        e = result["eval"]
        print(f"[{name}] fd {e['fd']:.2f} kid {e['kid']:.2f} precision {e['precision']:.3f} recall "
              f"{e['recall']:.3f} confidence {e['confidence']:.3f}", flush=True)


if __name__ == "__main__":
    main()
