"""The throughput benchmarks run end to end at toy sizes and write their JSON (figures are not checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_sgld_and_train_throughput_benchmarks_run(tmp_path):
    sgld, train = tmp_path / "sgld.json", tmp_path / "train.json"
    commands = [
        ["benchmarks/sgld_throughput.py", "--batch-sizes", "8", "--rounds", "1", "--steps", "2", "--check-steps", "3",
         "--no-torchebm", "--out", str(sgld)],
        ["benchmarks/train_throughput.py", "--batch", "16", "--sgld-steps", "2", "--rounds", "1",
         "--steps-per-round", "1", "--out", str(train)],
    ]
    env = {**os.environ, "GENFRAME_DATA_DIR": str(tmp_path)}  # no MNIST here: noise batches, no 60k-image load
    for command in commands:
        out = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                             check=False)
        assert out.returncode == 0, out.stderr
    report = json.loads(sgld.read_text())
    assert {r["variant"] for r in report["results"]} == {"plain", "genframe"}
    assert all(r["img_steps_per_s"] > 0 for r in report["results"])
    assert report["deviation_vs_plain"][0]["max_abs_diff"] < 1e-5
    report = json.loads(train.read_text())
    assert [r["variant"] for r in report["results"]] == ["plain", "genframe"]
    assert all(r["seconds_per_step"] > 0 for r in report["results"])
