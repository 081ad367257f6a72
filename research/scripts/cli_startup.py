"""How fast the CLI answers: wall time of `genframe --help`, `genframe run --help`, `genframe config show
ebm` and `genframe plugins`, each a fresh process, against two references measured in the same rounds:
the bare interpreter (`python -c pass`) and `python -c "import torch"` (what any command that imports
torch costs at least).

    python research/scripts/cli_startup.py                       # 5 rounds, this checkout
    python research/scripts/cli_startup.py --before /tmp/old     # also a checkout of an older commit, interleaved

With --before, the older checkout's `genframe` and `plugins/ebm` are put first on PYTHONPATH, so its code
answers through the same installed entry points. Rounds interleave every variant (the machine is noisy);
figures are medians. Writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {"--help": ["--help"], "run --help": ["run", "--help"], "config show ebm": ["config", "show", "ebm"],
            "plugins": ["plugins"]}
REFERENCES = {"python -c pass": ["-c", "pass"], "python -c 'import torch'": ["-c", "import torch"]}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "cli_startup.json"


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="a checkout of an older commit to time beside this one")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    variants: dict[str, tuple[list[str], dict[str, str]]] = {
        name: ([sys.executable, *argv], base) for name, argv in REFERENCES.items()}
    checkouts = {"now": None} if args.before is None else {"before": args.before.resolve(), "now": None}
    for label, root in checkouts.items():
        env = base if root is None else {**base, "PYTHONPATH": f"{root}{os.pathsep}{root / 'plugins' / 'ebm'}"}
        for name, argv in COMMANDS.items():
            variants[f"{label}: genframe {name}"] = ([sys.executable, "-m", "genframe", *argv], env)
    for argv, env in variants.values():  # warm the file cache once
        timed(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(args.rounds):
        names = list(variants)
        names = names[round_index % len(names):] + names[: round_index % len(names)]  # rotate the order
        for name in names:
            samples[name].append(timed(*variants[name]))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    torch_import = medians["python -c 'import torch'"]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.rounds} rounds, medians")
    for name, value in medians.items():
        print(f"{name:34} {value:6.3f} s   x{value / torch_import:.2f} of importing torch")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rounds": args.rounds, "medians_s": medians, "samples_s": samples}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
