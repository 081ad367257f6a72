"""How often a two-process ``torchrun`` training run fails on its way out: repeat small runs and count.

    GENFRAME_DATA_DIR=../shared/datasets python research/scripts/torchrun_exit.py [--rounds 50]

Each round trains a tiny EBM for 2 epochs in two gloo processes (the settings of
``tests/test_distributed.py``), then resumes it for 2 more, so a round is two ``torchrun`` launches.
A launch fails when any process exits non-zero; the script keeps that launch's stderr under
``--keep`` and prints each failure's last lines. It exists because a process that tore down gloo and
exited while rank 0 was still writing its last checkpoint aborted now and then at interpreter exit
("terminate called without an active exception"), a rare failure one test run does not show.
``PYTHONFAULTHANDLER=1`` makes such an abort print where each thread was.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ["trainer.batch_size=16", "sampler.steps=5", "sampler.generate_steps=10", "buffer.size=64",
            "data.limit=128", "logging.log_every=1", "logging.sample_n=4", "logging.chain_n=0",
            'logging.loggers=["jsonl"]']


def launch(args: list[str], log: Path) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "genframe", "run", "ebm", *args]
    with log.open("w") as err:
        return subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=err, timeout=600).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--keep", default="torchrun_exit_failures", help="folder for failed launches' stderr")
    args = parser.parse_args(argv)
    sets = [arg for item in SETTINGS for arg in ("--set", item)]
    launches = failures = 0
    start = time.monotonic()
    for round_ in range(1, args.rounds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            for phase, extra in [("train", [*sets, "--set", "trainer.epochs=2", "--run-dir", str(run)]),
                                 ("resume", ["--resume", str(run), "--set", "trainer.epochs=4"])]:
                log = Path(tmp) / f"{phase}.err"
                code = launch(extra, log)
                launches += 1
                if code != 0:
                    failures += 1
                    keep = Path(args.keep)
                    keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(log, keep / f"round{round_}_{phase}.err")
                    tail = [line for line in log.read_text().splitlines() if "it/s" not in line][-6:]
                    print(f"round {round_} {phase}: exit {code}", *tail, sep="\n  ")
                    break  # a failed first launch leaves nothing sound to resume
        print(f"round {round_}: {launches} launches, {failures} failed", flush=True)
    print(f"{failures} of {launches} launches failed ({time.monotonic() - start:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
