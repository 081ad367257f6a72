"""An adversarial table of bad inputs against the real CLI: each case runs ``python -m genframe`` in a
subprocess and is judged handled when it ends with exactly one ``Error:`` line, a non-zero exit and no
traceback (or, for a value that is merely unusual, trains and exits 0 or stops as diverged, exit 3,
in one line). Anything else (a traceback, a hang, two errors, exit 0 for a refused input) is a fault.

    python research/scripts/bad_inputs.py [--quick] [--out research/results/bad_inputs.json] [--match TEXT]

Besides the settings (every numeric setting with negative, infinite, not-a-number, huge and
non-numeric values, under the real ebm recipe with tiny sizes), it tries checkpoints and run
directories in odd states and output paths that cannot be written. ``GENFRAME_DATA_DIR`` must point
at the datasets (the tests' ``../shared/datasets``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TINY = ["trainer.batch_size=16", "trainer.max_steps=1", "sampler.steps=3", "sampler.generate_steps=5",
        "buffer.size=64", "logging.sample_n=4", "logging.chain_n=0", "data.limit=64", "trainer.val_batch_size=64"]
NUMERIC = ["seed", "trainer.epochs", "trainer.max_steps", "trainer.max_minutes", "trainer.budget_minutes",
           "trainer.budget_probe_steps", "trainer.batch_size",
           "trainer.checkpoint_every", "trainer.peer_timeout", "trainer.lr", "trainer.lr_min", "trainer.lr_decay_steps",
           "trainer.eps", "trainer.alpha", "trainer.real_noise", "trainer.val_batch_size", "trainer.r1",
           "trainer.r1_every", "trainer.score_limit", "logging.log_every", "logging.sample_n", "logging.chain_n",
           "logging.sample_every", "model.in_channels", "model.image_size", "model.hidden", "sampler.steps",
           "sampler.step_size", "sampler.noise", "sampler.grad_clip", "sampler.generate_steps", "sampler.threads",
           "buffer.size", "buffer.fresh_prob", "data.limit", "callbacks.divergence_guard.max_rollbacks",
           "callbacks.divergence_guard.lr_factor", "callbacks.divergence_guard.patience"]
VALUES = ["-1", "Infinity", "nan", "1e30", "abc"]
QUICK_VALUES = ["-1", "Infinity", "1e30"]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "genframe", *args]


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def judge(process: subprocess.CompletedProcess | None) -> tuple[bool, str]:
    if process is None:
        return False, "hung (over 180 s)"
    output = process.stdout + process.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    if "Traceback" in output:
        return False, "traceback: " + output.strip().splitlines()[-1][:160]
    if process.returncode == 0:
        return True, "ran (exit 0)"
    if process.returncode in (2, 3) and len(errors) == 1:
        return True, errors[0][:200]
    return False, f"exit {process.returncode}, {len(errors)} Error lines: {output.strip()[-160:]}"


def prepare(base: Path) -> dict[str, str]:
    """A finished tiny run, and files and folders in the odd states the cases use."""
    run = base / "run"
    subprocess.run(cli("run", "ebm", *sets([*TINY, "trainer.max_steps=2"]), "--run-dir", str(run), "--quiet"),
                   check=True, capture_output=True)
    last = run / "checkpoints" / "last.pt"
    data = last.read_bytes()
    (base / "truncated.pt").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    (base / "flipped.pt").write_bytes(bytes(flipped))
    (base / "text.pt").write_text("not a checkpoint\n" * 10)
    (base / "one-byte.pt").write_bytes(b"\x80")
    (base / "empty.pt").write_bytes(b"")
    (base / "a-folder.pt").mkdir()
    (base / "dead-end").mkdir()
    (base / "dead-end" / "config.json").write_text((run / "config.json").read_text())
    (base / "foreign").mkdir()
    (base / "foreign" / "notes.txt").write_text("mine")
    (base / "readonly").mkdir()
    os.chmod(base / "readonly", 0o555)
    (base / "bad.toml").write_text("[trainer\n")
    (base / "typo.toml").write_text("[trainer]\nepoch = 3\n")
    from PIL import Image  # images the score and completion commands cannot take

    Image.new("L", (28, 28)).save(base / "small.png")
    Image.new("RGB", (32, 32), (200, 0, 0)).save(base / "colour.png")
    Image.new("L", (20, 20)).save(base / "small-mask.png")
    (base / "not-an-image.png").write_text("text")
    return {"run": str(run), "base": str(base)}


def cases(places: dict[str, str], quick: bool) -> list[tuple[str, list[str]]]:
    run, base = places["run"], places["base"]
    found = []
    for key in NUMERIC:
        for value in QUICK_VALUES if quick else VALUES:
            found.append((f"--set {key}={value}", cli("run", "ebm", *sets(TINY), "--set", f"{key}={value}",
                                                         "--run-dir", f"{base}/runs/{key}-{value}", "--quiet")))
    for name in ("truncated", "flipped", "text", "one-byte", "empty", "a-folder"):
        found.append((f"sample {name}.pt", cli("sample", f"{base}/{name}.pt", "--out", f"{base}/{name}.png")))
        found.append((f"resume {name}.pt", cli("run", "ebm", "--resume", f"{base}/{name}.pt")))
    found += [
        ("resume a dead end", cli("run", "ebm", "--resume", f"{base}/dead-end")),
        ("run into a foreign folder", cli("run", "ebm", *sets(TINY), "--run-dir", f"{base}/foreign")),
        ("resume a finished run", cli("run", "ebm", "--resume", run)),
        ("run into a finished run", cli("run", "ebm", "--run-dir", run)),
        ("sample --out into a missing folder", cli("sample", run, "--out", f"{base}/missing/x.png")),
        ("sample --out into a read-only folder", cli("sample", run, "--out", f"{base}/readonly/x.png")),
        ("sample --tensor .pt", cli("sample", run, "--tensor", f"{base}/x.pt")),
        ("sample --out a folder", cli("sample", run, "--out", f"{base}/a-folder.pt")),
        ("sample --n 0", cli("sample", run, "--n", "0")),
        ("sample --chunk 0", cli("sample", run, "--chunk", "0")),
        ("sample --steps -1", cli("sample", run, "--steps", "-1")),
        ("sample --device tpu", cli("sample", run, "--device", "tpu")),
        ("eval --n 1", cli("eval", run, "--n", "1")),
        ("eval a text file", cli("eval", f"{base}/text.pt")),
        ("plot a missing run", cli("plot", f"{base}/nothing")),
        ("config show with a bad file", cli("config", "show", "ebm", "--config", f"{base}/bad.toml")),
        ("run with a typo file", cli("run", "ebm", "--config", f"{base}/typo.toml")),
        ("run unknown recipe", cli("run", "emb")),
        ("--set without =", cli("run", "ebm", "--set", "trainer.lr")),
        ("--set unknown section", cli("run", "ebm", "--set", "optimizer.lr=1")),
        ("betas out of range", cli("run", "ebm", "--set", "trainer.betas=[2,0.999]")),
        ("betas of one", cli("run", "ebm", "--set", "trainer.betas=[0.9]")),
        ("channels as a string", cli("run", "ebm", "--set", "model.channels=abc")),
        ("empty channels", cli("run", "ebm", *sets(TINY), "--set", "model.channels=[]", "--set", "model.kernel_sizes=[]",
                               "--run-dir", f"{base}/runs/no-convs")),
        ("loggers not a list", cli("run", "ebm", "--set", "logging.loggers=console")),
        ("unknown logger", cli("run", "ebm", "--set", 'logging.loggers=["nope"]')),
        ("unknown dataset", cli("run", "ebm", "--set", "data.name=cifar")),
        ("unknown sampler impl", cli("run", "ebm", "--set", "sampler.impl=fast")),
        ("unknown device", cli("run", "ebm", "--set", "trainer.device=tpu")),
    ]
    for command in (["score", run], ["ood", run, "--out"], ["inpaint", run, "--images"], ["denoise", run, "--images"]):
        for name, value in (("an unknown split", "mnist:valid"), ("an unknown set", "cifar:test"),
                            ("an image of the wrong size", f"{base}/small.png"),
                            ("a colour image", f"{base}/colour.png"), ("a text file", f"{base}/not-an-image.png"),
                            ("classes of a set without them", "inverted:3"), ("classes not numbers", "flipped:a")):
            picture = "--plot" if command[0] in ("score", "ood") else "--out"
            found.append((f"{command[0]} {name}", cli(*command, value, picture, f"{base}/x.png")))
    found += [
        ("score an unknown --score", cli("score", run, "noise", "--score", "loudness", "--plot", f"{base}/x.png")),
        ("score --plot .gif", cli("score", run, "noise", "--plot", f"{base}/x.gif")),
        ("score --out into a missing folder", cli("score", run, "noise", "--out", f"{base}/missing/s.csv")),
        ("score nothing", cli("score", run)),
        ("ood --n 1", cli("ood", run, "--n", "1")),
        ("inpaint a mask of the wrong size", cli("inpaint", run, "--images", "mnist:test", "--mask",
                                                 f"{base}/small-mask.png", "--out", f"{base}/x.png")),
        ("inpaint random:1.5", cli("inpaint", run, "--images", "mnist:test", "--mask", "random:1.5")),
        ("inpaint an unknown mask", cli("inpaint", run, "--images", "mnist:test", "--mask", "diagonal")),
        ("inpaint --tensor .pt", cli("inpaint", run, "--images", "mnist:test", "--tensor", f"{base}/x.pt")),
        ("denoise --noise -1", cli("denoise", run, "--images", "mnist:test", "--noise", "-1")),
        ("denoise --noise nan", cli("denoise", run, "--images", "mnist:test", "--noise", "nan")),
        ("denoise --steps 0", cli("denoise", run, "--images", "mnist:test", "--steps", "0")),
    ]
    return found


def run_case(args: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=180,
                              env={**os.environ, "GENFRAME_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three values per setting instead of five")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results" / "bad_inputs.json"))
    parser.add_argument("--match", action="append", help="only the cases whose name holds this text (repeatable; nothing is written)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genframe-bad-inputs-") as folder:
        places = prepare(Path(folder))
        table = [case for case in cases(places, args.quick) if args.match is None or any(m in case[0] for m in args.match)]
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            outcomes = list(pool.map(lambda case: judge(run_case(case[1])), table))
        os.chmod(Path(folder) / "readonly", 0o755)
    rows = [{"case": name, "handled": ok, "outcome": outcome} for (name, _), (ok, outcome) in zip(table, outcomes)]
    for row in rows:
        print(f"{'ok  ' if row['handled'] else 'FAIL'} {row['case']:45} {row['outcome']}")
    handled = sum(row["handled"] for row in rows)
    print(f"\n{handled} of {len(rows)} bad inputs handled ({time.monotonic() - began:.0f} s)")
    if args.match is None:
        Path(args.out).write_text(json.dumps({"tried": len(rows), "handled": handled, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
