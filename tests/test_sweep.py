"""`genframe sweep`: every point of a grid as its own run, done points skipped and interrupted ones
resumed when run again, a summary (CSV, markdown, overlay plot); real runs on real MNIST."""

from __future__ import annotations

import csv
import json
import subprocess

import pytest
from click.testing import CliRunner
from conftest import TINY

import genframe
from genframe.util.deprecation import GenframeDeprecationWarning
from genframe.cli.main import cli
from genframe.contracts.errors import ConfigError
from genframe.using.sweep import CORE_GOALS, parse_grid, plan, point_name, run_sweep, summarise, threads_per_point

SHARED = [a for s in [*TINY, "trainer.max_steps=4", "data.limit=256", "callbacks.evaluation.every_steps=4",
                      "callbacks.evaluation.n=50"] for a in ("--set", s)]


def test_grids_are_read_as_commas_or_json_lists_and_bad_ones_are_one_line():
    assert parse_grid(["trainer.lr=1e-4,3e-4", "seed=0,1,2"]) == {"trainer.lr": ["1e-4", "3e-4"], "seed": ["0", "1", "2"]}
    assert parse_grid(["model.channels=[[16,32,64,64],[32,64,64,64]]"]) == {
        "model.channels": ["[16,32,64,64]", "[32,64,64,64]"]}
    assert point_name({"trainer.lr": "1e-4", "model.channels": "[16,32]"}) == "trainer.lr=1e-4__model.channels=[16,32]"
    for bad in (["seed"], ["seed=0,,1"], ["model.channels=[1,"], ["seed=[]"], ["seed=0", "seed=1"]):
        with pytest.raises(ConfigError):
            parse_grid(bad)


@pytest.mark.slow
def test_a_sweep_runs_every_point_summarises_them_and_skips_or_resumes_when_run_again(data_dir, tmp_path):
    runs = tmp_path / "sweep"
    args = ["sweep", "ebm", *SHARED, "--grid", "trainer.lr=0.001,0.0003", "--grid", "seed=0,1", "--runs-dir", str(runs),
            "--parallel", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    points = sorted(p.name for p in runs.iterdir() if p.is_dir())
    assert points == ["trainer.lr=0.0003__seed=0", "trainer.lr=0.0003__seed=1", "trainer.lr=0.001__seed=0",
                      "trainer.lr=0.001__seed=1"]
    for name in points:
        config = json.loads((runs / name / "config.json").read_text())
        lr, seed = (part.split("=")[1] for part in name.split("__"))
        assert config["trainer"]["lr"] == float(lr) and config["seed"] == int(seed) and config["trainer"]["max_steps"] == 4
    rows = list(csv.DictReader((runs / "summary.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"} and {r["step"] for r in rows} == {"4"}
    assert all(r["eval/fd best"] == r["eval/fd final"] for r in rows)  # one evaluation each (best: see below)
    table = (runs / "summary.md").read_text()
    assert ("| trainer.lr | seed | status | step | minutes | eval/class_spread | eval/confidence | eval/confident | "
            "eval/fd | eval/kid | eval/knn_coverage | eval/precision | eval/recall |") in table  # density: no goal
    assert "eval/fd: lower" in table and "eval/kid: lower" in table and "eval/recall: higher" in table
    assert (runs / "summary.png").stat().st_size > 0
    # again: done points are skipped (nothing rewritten); a point whose run was killed is resumed
    stamps = {name: (runs / name / "checkpoints" / "last.pt").stat().st_mtime_ns for name in points}
    killed = runs / points[0]
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2", "data.limit=256", "trainer.lr=0.0003", "seed=0"],
                   run_dir=tmp_path / "short", quiet=True)
    for path in killed.iterdir():
        if path.is_dir():
            __import__("shutil").rmtree(path)
        else:
            path.unlink()
    for path in (tmp_path / "short").iterdir():
        path.rename(killed / path.name)
    status = json.loads((killed / "status.json").read_text())
    (killed / "status.json").write_text(json.dumps({**status, "status": "running", "pid": 2**22 + 11}))  # as a kill leaves it
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = {(r["trainer.lr"], r["seed"]): r for r in csv.DictReader((runs / "summary.csv").open())}
    assert rows[("0.0003", "0")]["status"] == "completed" and rows[("0.0003", "0")]["step"] == "4"  # resumed to the end
    assert sum(r["status"] == "completed (skipped)" for r in rows.values()) == 3
    assert all((runs / n / "checkpoints" / "last.pt").stat().st_mtime_ns == stamps[n] for n in points[1:])


def test_a_point_with_a_bad_setting_stops_the_sweep_before_any_point_runs(tmp_path):
    result = CliRunner().invoke(cli, ["sweep", "ebm", "--grid", "trainer.lr=0.001,-1", "--runs-dir", str(tmp_path / "s")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "trainer.lr: Input should be greater than 0" in errors[0]
    assert not (tmp_path / "s").exists()


def test_a_json_list_value_reaches_the_point_config_as_a_list():
    values = parse_grid(["model.channels=[[16,32,64,64],[32,64,64,64]]"])["model.channels"]
    channels = [genframe.recipe_config("ebm", None, [f"model.channels={value}"]).model.channels for value in values]
    assert channels == [[16, 32, 64, 64], [32, 64, 64, 64]]


def test_best_follows_each_metrics_goal_and_the_table_shows_the_plotted_metric(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": 1, "loss": 0.5, "eval/fd": 9.0, "eval/coverage": 0.7, "energy": 3.0},
            {"step": 2, "loss": -0.2, "eval/fd": 4.0, "eval/coverage": 0.9},
            {"step": 3, "loss": 0.1, "eval/fd": 6.0, "eval/coverage": 0.8, "energy": 1.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (run / "status.json").write_text(json.dumps({"status": "completed", "step": 3, "train_minutes": 1.5}))
    with pytest.warns(GenframeDeprecationWarning, match="'eval/coverage'"):  # a run of genframe 0.1: its old name
        summary = summarise(run, {**CORE_GOALS, "energy": "min"})
    assert summary["eval/fd best"] == 4.0 and summary["eval/fd final"] == 6.0  # lower is better
    assert summary["eval/class_spread best"] == 0.9 and summary["eval/class_spread final"] == 0.8  # higher is better
    assert summary["energy best"] == 1.0 and summary["loss final"] == 0.1 and "loss best" not in summary  # no goal
    assert summary["step"] == 3 and summary["minutes"] == 1.5
    from genframe.using.sweep import Point, write_summary

    write_summary([Point({"seed": "0"}, run, "completed", 0, summary)], tmp_path, CORE_GOALS, metric="loss")
    header, _, row = (tmp_path / "summary.md").read_text().splitlines()[:3]
    assert header == "| seed | status | step | minutes | eval/class_spread | eval/fd | loss |"  # "energy": no goal
    assert row == "| 0 | completed | 3 | 1.5 | 0.8 (best 0.9) | 6 (best 4) | 0.1 |"
    assert "energy final" in (tmp_path / "summary.csv").read_text().splitlines()[0]


def test_parallel_points_share_the_threads_this_process_may_use(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5}, raising=False)
    assert threads_per_point(2, {}) == 3 and threads_per_point(4, {}) == 1 and threads_per_point(8, {}) == 1
    assert threads_per_point(2, {"OMP_NUM_THREADS": "8"}) == 4  # the user's own limit is what is shared
    assert threads_per_point(2, {"OMP_NUM_THREADS": "junk"}) == 3
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen = []

    def fake_run(command, env, stdout, stderr, check):
        seen.append(env["OMP_NUM_THREADS"])
        return subprocess.CompletedProcess(command, 2)

    monkeypatch.setattr(subprocess, "run", fake_run)
    run_sweep("ebm", {"seed": ["0", "1"]}, tmp_path / "runs", parallel=2, say=lambda line: None)
    assert seen == ["3", "3"]


def test_points_that_would_share_a_directory_or_an_unwritable_runs_dir_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="would share the run directory"):
        plan({"data.root": ["a/b", "a b"]}, tmp_path)
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(cli, ["sweep", "ebm", "--grid", "seed=0,1", "--runs-dir", str(tmp_path / "file" / "s")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "cannot make --runs-dir" in errors[0], result.output
