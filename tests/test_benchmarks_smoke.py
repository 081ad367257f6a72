"""The throughput benchmarks (benchmarks/) and the research scripts (research/scripts/) run end to end at toy sizes
and write their JSON (figures are not checked)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO
from example_plugins import install_example

SCRIPTS = REPO / "research" / "scripts"
# the research scripts run as files from the repository root, as their docstrings show
FAST_RECIPE, FAMILIES, FAMILY_SPEED, LOOP_OVERHEAD, CLI_STARTUP = (
    f"research/scripts/{name}.py" for name in ("fast_recipe", "families", "family_speed", "loop_overhead",
                                                "cli_startup"))


def research_script(name: str):
    """research/scripts/NAME.py as a module (the studies are scripts, not a package)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(SCRIPTS))


def fast_recipe():
    return research_script("fast_recipe")


@pytest.mark.slow
def test_sgld_and_train_throughput_benchmarks_run(tmp_path):
    sgld, train, profile = tmp_path / "sgld.json", tmp_path / "train.json", tmp_path / "profile.json"
    lanes = tmp_path / "lanes.json"
    commands = [
        ["benchmarks/sgld_throughput.py", "--batch-sizes", "8", "--rounds", "1", "--steps", "2", "--check-steps", "3",
         "--no-torchebm", "--impls", "native", "fused", "--lanes", "16", "8", "--out", str(lanes)],
        ["benchmarks/sgld_throughput.py", "--batch-sizes", "8", "--rounds", "1", "--steps", "2", "--check-steps", "3",
         "--no-torchebm", "--precision", "fp32", "bf16", "--out", str(sgld)],
        ["benchmarks/train_throughput.py", "--batch", "16", "--sgld-steps", "2", "--rounds", "1",
         "--steps-per-round", "1", "--out", str(train)],
        ["benchmarks/step_profile.py", "--batch", "8", "--rounds", "1", "--steps", "1", "--set",
         "sampler.precision=bf16", "--out", str(profile)],
    ]
    env = {**os.environ, "GENFRAME_DATA_DIR": str(tmp_path)}  # no MNIST here: noise batches, no 60k-image load
    for command in commands:
        out = subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                             check=False)
        assert out.returncode == 0, out.stderr
    report = json.loads(lanes.read_text())  # both kernel widths, whatever this CPU's is
    assert [r["variant"] for r in report["results"]] == ["plain", "genframe-native-16lanes", "genframe-native-8lanes",
                                                         "genframe-fused"]
    assert all(d["max_abs_diff"] < 1e-5 for d in report["deviation_vs_plain"])
    assert report["genframe_impl"] == {"genframe-native-16lanes 1x32x32": "native (16 lanes)",
                                       "genframe-native-8lanes 1x32x32": "native (8 lanes)",
                                       "genframe-fused 1x32x32": "fused"}
    report = json.loads(sgld.read_text())
    assert {r["variant"] for r in report["results"]} == {"plain", "genframe", "genframe-bf16"}
    assert all(r["img_steps_per_s"] > 0 for r in report["results"])
    assert [r["ratio_vs_fp32"] > 0 for r in report["results"] if "ratio_vs_fp32" in r] == [True]  # bf16 vs fp32
    assert report["deviation_vs_plain"][0]["max_abs_diff"] < 1e-5
    report = json.loads(train.read_text())
    assert [r["variant"] for r in report["results"]] == ["plain", "genframe"]
    assert all(r["seconds_per_step"] > 0 for r in report["results"])
    report = json.loads(profile.read_text())
    phases = report["median_round_seconds_per_step"]
    assert report["settings"]["steps_per_round"] == 4  # rounded up to whole R1 periods of the fast recipe
    assert report["settings"]["overrides"] == ["sampler.precision=bf16"] and report["gomp_spincount"]
    assert phases["chains"] > 0 and phases["backward"] > 0 and phases["r1 penalty (forward, grad)"] > 0
    assert sum(v for k, v in phases.items() if k != "total") == pytest.approx(phases["total"], abs=1e-4)


@pytest.mark.slow
def test_fast_recipe_report_judges_each_fast_run_and_plots_all(data_dir, tmp_path):
    import genframe

    tiny_eval = ["trainer.batch_size=16", "trainer.max_steps=4", "sampler.steps=3", "sampler.generate_steps=3",
                 "buffer.size=64", "callbacks.evaluation.every_epochs=null", "callbacks.evaluation.every_steps=2",
                 "callbacks.evaluation.n=16", "callbacks.evaluation.steps=3", 'logging.loggers=["jsonl"]',
                 "logging.chain_n=0", "logging.sample_n=4"]
    # The fast runs evaluate with more samples than the reference did (an fd depends on n).
    runs = {"ref": [], "f0": ["seed=0", "callbacks.evaluation.n=24"], "f1": ["seed=1", "callbacks.evaluation.n=24"]}
    for name, extra in runs.items():
        genframe.train("ebm", overrides=[*tiny_eval, *extra], run_dir=tmp_path / name, quiet=True)
    plot, out = tmp_path / "plot.png", tmp_path / "report.json"
    command = [sys.executable, FAST_RECIPE, "report", *(str(tmp_path / n) for n in runs),
               "--minutes", "0.001", "--plot", str(plot), "--out", str(out)]
    unpaired = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert unpaired.returncode == 0, unpaired.stderr
    assert "no evaluation of 24 samples" in unpaired.stdout
    assert f"genframe eval {tmp_path / 'ref'} --n 24" in unpaired.stdout
    assert not any("ratio" in e for e in json.loads(out.read_text())["summary"]["fast"].values())

    last = tmp_path / "ref" / "checkpoints" / "last.pt"  # (the run itself may sample with best.pt: keep-best's choice)
    genframe.evaluate(last, n=24)  # the reference's last step again, with the fast runs' sample count
    genframe.evaluate(last, n=32)  # and with more samples still: not the fast runs' count, not paired
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert list(report["curves"]) == ["reference", "fast f0 (seed 0)", "fast f1 (seed 1)"]
    assert [(p["step"], p["n"]) for p in report["curves"]["reference"]] == [(2, 16), (4, 16), (4, 24), (4, 32)]
    for name in ["fast f0 (seed 0)", "fast f1 (seed 1)"]:
        assert [(p["step"], p["n"]) for p in report["curves"][name]] == [(2, 24), (4, 24)]
    for name in ["fast f0 (seed 0)", "fast f1 (seed 1)"]:
        entry = report["summary"]["fast"][name]  # paired with the reference's 24-sample figure, not its 16 or 32
        assert entry["reference_fd_at_budget"] == report["curves"]["reference"][2]["fd"]
        assert entry["ratio"] == round(report["curves"][name][-1]["fd"] / report["curves"]["reference"][2]["fd"], 3)
    assert plot.stat().st_size > 0 and "ratio" in done.stdout
    ratios = [report["summary"]["fast"][name]["ratio"] for name in ["fast f0 (seed 0)", "fast f1 (seed 1)"]]
    assert report["summary"]["over_runs"]["worst_ratio"] == max(ratios)
    assert f"over 2 fast runs: mean ratio {sum(ratios) / 2:.3f}" in done.stdout

    # Curves from that report stand in for run folders that are gone, beside a run folder that is not.
    again = tmp_path / "again.json"
    earlier = subprocess.run([sys.executable, FAST_RECIPE, "report", f"{out}:reference",
                              f"{out}:fast f0 (seed 0)", str(tmp_path / "f1"), "--minutes", "0.001",
                              "--plot", str(tmp_path / "again.png"), "--out", str(again)],
                             cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert earlier.returncode == 0, earlier.stderr
    assert json.loads(again.read_text())["summary"] == report["summary"]
    named = subprocess.run([sys.executable, FAST_RECIPE, "report", f"{out}:reference",
                            f"{out}:fast f0 (seed 0)", str(tmp_path / "f1"), "--labels", "60-minute seed 0",
                            "30-minute seed 1", "--fast-speed", "0.5", "0.7", "0.6", "--minutes", "0.001", "--plot",
                            str(tmp_path / "named.png"), "--out", str(again)],
                           cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert named.returncode == 0, named.stderr
    curves = json.loads(again.read_text())["curves"]
    assert list(curves) == ["reference", "fast 60-minute seed 0", "fast 30-minute seed 1"]
    # the run folder's steps become minutes at the given speed (the median round); the earlier curve keeps its own
    assert [p["minutes"] for p in curves["fast 30-minute seed 1"]] == [round(s * 0.6 / 60, 2) for s in (2, 4)]
    assert curves["fast 60-minute seed 0"] == report["curves"]["fast f0 (seed 0)"]
    missing = subprocess.run([sys.executable, FAST_RECIPE, "report", f"{out}:reference",
                              f"{out}:fast f9 (seed 9)", "--out", str(again)],
                             cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert missing.returncode == 1 and "has no curve 'fast f9 (seed 9)'" in missing.stderr

    lonely = subprocess.run([sys.executable, FAST_RECIPE, "report", str(tmp_path / "ref")],
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert lonely.returncode == 2 and "at least one fast run" in lonely.stderr


def test_fast_recipe_stability_rule():
    stable = fast_recipe().stable
    steady = [{"minutes": m, "fd": fd} for m, fd in [(6, 60), (12, 25), (18, 12), (24, 20), (30, 10)]]
    assert stable(steady)  # 20 is under twice the best so far (12)
    collapse = [*steady, {"minutes": 36, "fd": 390}]
    assert not stable(collapse)
    early = [{"minutes": 6, "fd": 24}, {"minutes": 12, "fd": 50}, {"minutes": 18, "fd": 30}]
    assert stable(early)  # the first 15 minutes may swing
    assert not stable(early, after_minutes=7.5)  # a 30-minute budget's first quarter is over by 12


def test_fast_recipe_stability_is_judged_on_unrounded_figures(tmp_path):
    module = fast_recipe()
    records = [{"step": step, "eval/fd": fd, "eval/confidence": 0.9, "eval/coverage": 0.99, "eval/n": 10000}
               for step, fd in [(8850, 8.4913), (11800, 5.3158), (14750, 10.6344)]]  # seed 1's, measured
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "config.json").write_text(json.dumps({"eval": {"n": 10000}}))  # a run from before the callbacks
    points = module.curve(str(tmp_path), s_per_step=0.1217)
    assert [p["n"] for p in points] == [10000] * 3
    assert not module.stable(points)  # 10.6344 > 2 x 5.3158, though 10.63 < 2 x 5.32 once rounded


def test_fast_recipe_minutes_count_the_steps_a_rollback_redid(tmp_path):
    curve = fast_recipe().curve
    evaluation = {"eval/fd": 9.0, "eval/confidence": 0.9, "eval/coverage": 0.99, "eval/train_minutes": 1.0}
    records = [{"step": 100, **evaluation},
               {"step": 150, "event": "rollback", "reason": "cdiv -3.1 beyond callbacks.divergence_guard.limit=1 for "
                "25 steps in a row at step 190 (epoch 1); rolled back to step 150 with learning rate 0.0005"},
               {"step": 200, **evaluation},
               # a rollback a callback asked for between steps: its step has no epoch
               {"step": 200, "event": "rollback", "reason": "loss plateau at step 230; rolled back to step 200 with "
                "learning rate 0.00025"},
               {"step": 300, **evaluation}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "config.json").write_text(json.dumps({"callbacks": {"evaluation": {"n": 1000}}}))
    points = curve(str(tmp_path), s_per_step=0.6)
    # Steps 151-190 were computed, thrown away and computed again: step 200 cost 240 steps, 2.4 minutes;
    # then steps 201-230 too: step 300 cost 370.
    assert [(p["step"], p["redone_steps"], p["minutes"]) for p in points] == [(100, 0, 1.0), (200, 40, 2.4),
                                                                                 (300, 70, 3.7)]
    assert [p["n"] for p in points] == [1000] * 3  # records without eval/n: the run's own callbacks.evaluation.n


@pytest.mark.slow
def test_fast_recipe_report_takes_a_run_that_finished_early_at_its_final_weights(tmp_path):
    # callbacks.divergence_guard.out_of_rollbacks = finish: the run ended at 50 minutes on its last good checkpoint, and
    # evaluated it; that evaluation is its figure at 60 minutes. A run still training at 50 is not judged.
    speeds = json.loads((REPO / "research/results/fast_recipe_speed.json").read_text())
    ref_step, fast_step = [round(m * 60 / speeds[r]["s_per_step"]) for m, r in ((60, "reference"), (50, "fast"))]
    evaluation = {"eval/confidence": 0.95, "eval/coverage": 0.99, "eval/train_minutes": 1.0, "eval/n": 1000}
    finish = {"step": fast_step, "event": "rollback",
              "reason": f"non-finite loss (nan) at step {fast_step} (epoch 50); "
              f"rolled back to step {fast_step} and finished there, out of rollbacks (5 of "
              "callbacks.divergence_guard.max_rollbacks; out_of_rollbacks = finish): its weights are the run's result"}
    runs = {"ref": [{"step": ref_step, **evaluation, "eval/fd": 60.0}],
            "early": [{"step": fast_step - 10, **evaluation, "eval/fd": 2.5}, finish,
                      {"step": fast_step, **evaluation, "eval/fd": 2.0}],
            "still": [{"step": fast_step, **evaluation, "eval/fd": 2.0}]}
    for name, records in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (tmp_path / name / "config.json").write_text(json.dumps({"seed": 0, "callbacks": {"evaluation": {"n": 1000}}}))
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, FAST_RECIPE, "report", *(str(tmp_path / n) for n in runs),
                           "--plot", str(tmp_path / "plot.png"), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out.read_text())["summary"]["fast"]
    early = summary["fast early (seed 0)"]
    assert early["ratio"] == round(2.0 / 60.0, 3) and early["finished_early_at_minutes"] == 50.0
    assert "fast early (seed 0) finished early at 50.0 minutes" in done.stdout
    assert "ratio" not in summary["fast still (seed 0)"]  # its last evaluation, at 50 minutes, is not its 60

    # Resumed after it finished, the run trained on: its later evaluations are not final.
    with open(tmp_path / "early" / "metrics.jsonl", "a") as metrics:
        metrics.write(json.dumps({"step": fast_step + 100, **evaluation, "eval/fd": 1.9}) + "\n")
    points = fast_recipe().curve(str(tmp_path / "early"), speeds["fast"]["s_per_step"])
    assert [p.get("final", False) for p in points] == [False, True, False]


def test_fast_recipe_budget_figure_is_the_latest_and_most_precise_evaluation():
    at_budget = fast_recipe().at_budget
    points = [{"minutes": 50.0, "n": 1000, "fd": 9.0}, {"minutes": 60.0, "n": 1000, "fd": 5.0},
              {"minutes": 60.0, "n": 10000, "fd": 4.0}, {"minutes": 60.0, "n": 1000, "fd": 6.0},
              {"minutes": 66.0, "n": 1000, "fd": 3.0}]
    assert at_budget(points, 60.5)["fd"] == 4.0  # the same step with more samples
    assert at_budget(points, 60.5, n=1000)["fd"] == 6.0  # the later of two equal ones (a rollback re-evaluated)
    assert at_budget(points, 55.0)["fd"] == 9.0 and at_budget(points, 40.0) is None
    assert at_budget(points, 60.5, n=5000) is None


def test_fast_recipe_seeds_evaluates_one_model_with_several_draws(data_dir, tmp_path):
    import genframe

    run = tmp_path / "run"
    genframe.train("ebm", overrides=["trainer.batch_size=16", "trainer.max_steps=2", "sampler.steps=3",
                                     "sampler.generate_steps=3", "buffer.size=64", 'logging.loggers=["jsonl"]',
                                     "logging.chain_n=0", "logging.sample_n=4", "callbacks.evaluation.n=20"],
                   run_dir=run, quiet=True)
    seeds = fast_recipe().seeds
    out = tmp_path / "seeds.json"  # in this process: the metric's classifier is trained once per test session
    seeds(argparse.Namespace(models=[str(run)], seeds=[1, 2], n=None, out=str(out)))
    entry = json.loads(out.read_text())[str(run)]
    assert entry["step"] == 2 and entry["seeds"] == [1, 2] and len(entry["fd"]) == 2
    assert entry["n"] == 20  # the run's own callbacks.evaluation.n
    assert entry["fd"][0] != entry["fd"][1]  # different draws of the same model
    assert entry["fd_mean"] == pytest.approx(sum(entry["fd"]) / 2, abs=0.01)


def test_precision_quality_evaluates_one_model_with_each_precision_and_seed(data_dir, tmp_path):
    from genframe_ebm.backends import native

    import genframe

    run = tmp_path / "run"
    genframe.train("ebm", overrides=["trainer.batch_size=16", "trainer.max_steps=2", "sampler.steps=3",
                                     "sampler.generate_steps=3", "buffer.size=64", 'logging.loggers=["jsonl"]',
                                     "logging.chain_n=0", "logging.sample_n=4"], run_dir=run, quiet=True)
    precision_quality = research_script("precision_quality")
    row = precision_quality.compare([str(run)], [1, 2], 20)[str(run)]
    assert row["step"] == 2 and row["seeds"] == [1, 2] and len(row["fp32"]["fd"]) == len(row["bf16"]["fd"]) == 2
    assert row["fp32"]["fd"][0] != row["fp32"]["fd"][1]  # two draws of one model
    if native.cpu_has_bf16():  # else bf16 runs fp32, the same draws
        assert row["bf16"]["fd"] != row["fp32"]["fd"]
    assert row["bf16_minus_fp32"] == pytest.approx(row["bf16"]["fd_mean"] - row["fp32"]["fd_mean"], abs=0.002)


def test_fast_recipe_budget_tolerance_is_the_spread_of_the_speed_rounds():
    tolerance = fast_recipe().tolerance
    # 0.1284 to 0.1348 s/step around a median of 0.1293: 60 minutes are known to about 3 minutes
    assert tolerance({"s_per_step": 0.1293, "rounds": [0.1284, 0.1293, 0.1348]}, 60) == pytest.approx(2.97, abs=0.01)
    assert tolerance({"s_per_step": 0.2, "rounds": [0.2, 0.2, 0.2]}, 60) == 0.5  # never below half a minute
    assert tolerance({"s_per_step": 0.2}, 60) == 0.5  # an older speed file without rounds


@pytest.mark.slow
def test_snapshot_mixture_measures_each_checkpoint_and_the_mixtures_of_the_last_ones(data_dir, tmp_path):
    import shutil

    import genframe

    run, saved = tmp_path / "run", []
    small = ["trainer.batch_size=16", "sampler.steps=3", "sampler.generate_steps=3", "buffer.size=64",
             'logging.loggers=["jsonl"]', "logging.chain_n=0", "logging.sample_n=4"]
    for steps in (1, 2, 3):
        genframe.train("ebm", overrides=[*small, f"trainer.max_steps={steps}"], run_dir=None if steps > 1 else run,
                       resume=run if steps > 1 else None, quiet=True)
        saved.append(shutil.copy(run / "checkpoints" / "last.pt", tmp_path / f"step{steps}.pt"))
    snapshot_mixture = research_script("snapshot_mixture")
    rows = snapshot_mixture.main([*map(str, reversed(saved)), "--n", "20", "--mix", "2", "3"])
    assert [row["step"] for row in rows] == [1, 2, 3]  # sorted by step
    assert "mix2_fd" not in rows[0] and "mix3_fd" not in rows[1]
    assert rows[2]["mix2_fd"] > 0 and rows[2]["mix3_fd"] > 0 and sum(rows[2]["classes"]) == 20
    assert rows[2]["mix3_fd"] not in (rows[0]["fd"], rows[1]["fd"], rows[2]["fd"])  # a mixture, not one of them


def test_snapshot_mixture_scores_the_last_members_of_a_mixture_checkpoint(data_dir, tmp_path):
    import genframe

    run = tmp_path / "run"
    genframe.train("ebm", overrides=["trainer.batch_size=16", "sampler.steps=3", "sampler.generate_steps=3",
                                     "buffer.size=64", 'logging.loggers=["jsonl"]', "logging.chain_n=0",
                                     "logging.sample_n=4", "trainer.max_steps=3", 'callbacks.use=["snapshot_mixture"]',
                                     "callbacks.snapshot_mixture.members=3", "callbacks.snapshot_mixture.every=1"],
                   run_dir=run, quiet=True)
    snapshot_mixture = research_script("snapshot_mixture")
    [row] = snapshot_mixture.main([str(run / "checkpoints" / "last.pt"), "--n", "30", "--mix", "--members", "1", "3"])
    assert row["last3_fd"] == row["fd"]  # all three members: the run's own mixture, the same draws
    assert row["last1_fd"] != row["fd"]  # the trained net alone


def test_mixture_generation_times_one_net_against_a_mixture(tmp_path):
    mixture_generation = research_script("mixture_generation")
    out = tmp_path / "gen.json"
    result = mixture_generation.main(["--n", "24", "--members", "1", "3", "--rounds", "2", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    assert [len(v["rounds"]) for v in result["variants"].values()] == [2, 2]
    assert result["variants"]["1"]["ratio_to_first"] == 1.0 and result["variants"]["3"]["median_s"] > 0


@pytest.mark.slow
def test_loop_overhead_times_the_loop_against_plain_steps(data_dir, tmp_path):
    out = tmp_path / "loop.json"
    done = subprocess.run([sys.executable, LOOP_OVERHEAD, "--rounds", "1", "--steps", "12", "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert len(result["rounds"]) == 1 and result["loop_ms"] > 0 and result["plain_ms"] > 0
    assert result["ratio"] == result["rounds"][0]["loop_s"] / result["rounds"][0]["plain_s"]
    assert "loop / plain" in done.stdout


@pytest.mark.slow
def test_cli_startup_benchmark_times_each_command_against_its_references(tmp_path):
    out = tmp_path / "cli.json"
    done = subprocess.run([sys.executable, CLI_STARTUP, "--rounds", "1", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    medians = json.loads(out.read_text())["medians_s"]
    assert set(medians) == {"python -c pass", "python -c 'import torch'", "now: genframe --help",
                            "now: genframe run --help", "now: genframe config show ebm", "now: genframe plugins"}
    assert "of importing torch" in done.stdout


def test_the_bad_input_table_judges_one_error_line_as_handled_and_anything_else_as_a_fault():
    bad_inputs = research_script("bad_inputs")

    def outcome(code, out="", err=""):
        return bad_inputs.judge(subprocess.CompletedProcess([], code, out, err))

    assert outcome(2, err="Error: trainer.lr: Input should be a finite number\n") == (
        True, "Error: trainer.lr: Input should be a finite number")
    assert outcome(0, out="run completed\n") == (True, "ran (exit 0)")
    assert outcome(3, err="Error: training diverged\n")[0]
    assert not outcome(1, err="Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")[0]
    assert not outcome(2, err="Error: one\nError: two\n")[0]
    assert not outcome(1, err="Aborted!\n")[0]
    assert bad_inputs.judge(None) == (False, "hung (over 180 s)")
    assert len(bad_inputs.NUMERIC) * len(bad_inputs.VALUES) >= 150  # every numeric setting, five ways


@pytest.mark.slow
def test_families_puts_runs_of_any_recipe_on_one_ruler_of_minutes(tmp_path):
    # Each run's steps become minutes at its own speed; at the budget, of two evaluations of one step, the one with
    # more samples; the stability rule on the run's own evaluations (its callbacks.evaluation.n).
    def write_run(name: str, evaluations: list[tuple[int, float, int]]) -> str:
        (tmp_path / name).mkdir()
        records = [{"step": step, "eval/fd": fd, "eval/confidence": 0.8, "eval/coverage": 0.99, "eval/n": n}
                   for step, fd, n in evaluations]
        (tmp_path / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (tmp_path / name / "config.json").write_text(json.dumps({"callbacks": {"evaluation": {"n": 1000}}}))
        return str(tmp_path / name)

    slow = write_run("slow", [(2, 5.0, 1000), (4, 4.0, 1000)])  # 60 s/step: minutes 2 and 4
    swinging = write_run("swinging", [(2, 10.0, 1000), (4, 30.0, 1000), (4, 29.0, 10000)])  # 30 s/step: 1 and 2
    out, plot = tmp_path / "families.json", tmp_path / "families.png"
    done = subprocess.run([sys.executable, FAMILIES, f"slow one={slow}@60", f"swinging={swinging}@30",
                           "--minutes", "3", "--out", str(out), "--plot", str(plot)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    runs = json.loads(out.read_text())["runs"]
    assert list(runs) == ["slow one", "swinging"]
    assert (runs["slow one"]["at_budget"]["step"], runs["slow one"]["at_budget"]["fd"]) == (2, 5.0)  # 4 minutes > 3
    assert (runs["swinging"]["at_budget"]["n"], runs["swinging"]["at_budget"]["fd"]) == (10000, 29.0)
    assert runs["slow one"]["stable_after_first_quarter"] is True
    assert runs["swinging"]["stable_after_first_quarter"] is False  # 30 > 2 x 10 after 0.75 minutes
    assert plot.stat().st_size > 0

    bad = subprocess.run([sys.executable, FAMILIES, f"slow={slow}", "--out", str(out), "--plot",
                          str(plot)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: run ") and "LABEL=RUN_DIR@SECONDS_PER_STEP" in bad.stderr


@pytest.mark.slow
def test_fast_recipe_report_draws_beside_its_own_results_file_unless_told(tmp_path):
    # A study with its own --out must not overwrite the shipped picture of the shipped results file.
    shipped = REPO / "docs" / "images" / "fast_vs_reference.png"
    before = shipped.read_bytes()
    evaluation = {"eval/fd": 3.0, "eval/confidence": 0.95, "eval/coverage": 0.99, "eval/train_minutes": 1.0,
                  "eval/n": 1000}
    for name in ("ref", "fast"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps({"step": 100, **evaluation}) + "\n")
        (tmp_path / name / "config.json").write_text(json.dumps({"seed": 0, "callbacks": {"evaluation": {"n": 1000}}}))
    out = tmp_path / "study.json"
    done = subprocess.run([sys.executable, FAST_RECIPE, "report", str(tmp_path / "ref"),
                           str(tmp_path / "fast"), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "study.png").stat().st_size > 0 and f"wrote {tmp_path / 'study.png'}" in done.stdout
    assert shipped.read_bytes() == before
    assert fast_recipe().default_plot(str(REPO / "research" / "results" / "fast_recipe.json")) == shipped


@pytest.mark.slow
def test_family_speed_times_recipes_of_different_families_in_interleaved_rounds(data_dir, tmp_path, monkeypatch):
    vae = REPO / "examples" / "plugins" / "genframe-vae"
    site = install_example(vae, tmp_path / "site", monkeypatch)  # the VAE plugin, found through its entry point
    path = [str(site), str(vae), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "GENFRAME_DATA_DIR": str(data_dir), "PYTHONPATH": os.pathsep.join(path)}
    out = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, FAMILY_SPEED, "ebm=ebm:examples/ebm_mnist_quick.toml@sampler.steps=5",
                           "vae=vae:examples/plugins/genframe-vae/vae_mnist.toml", "--set", "trainer.batch_size=16",
                           "--rounds", "2", "--warmup", "0", "--steps", "20", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    rounds = [line.split(":")[0] for line in done.stdout.splitlines()[:4]]
    assert rounds == ["round 1", "round 1", "round 2", "round 2"]  # interleaved
    for label, recipe in (("ebm", "ebm"), ("vae", "vae")):
        assert result[label]["recipe"] == recipe and len(result[label]["rounds"]) == 2
        assert result[label]["s_per_step"] == statistics.median(result[label]["rounds"])
        assert 0 < result[label]["s_per_step"] < 30
    assert result["settings"]["overrides"] == ["trainer.batch_size=16"]
    assert result["ebm"]["overrides"] == ["sampler.steps=5"] and result["vae"]["overrides"] == []  # a spec's own

    bad = subprocess.run([sys.executable, FAMILY_SPEED, "vae:examples/plugins/genframe-vae/vae_mnist.toml"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: ") and "LABEL=RECIPE:CONFIG" in bad.stderr
    no_value = subprocess.run([sys.executable, FAMILY_SPEED, "a=ebm:examples/ebm_mnist_quick.toml@sampler.steps"],
                              cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert no_value.returncode == 1 and "LABEL=RECIPE:CONFIG[@KEY=VALUE...]" in no_value.stderr
    twice = subprocess.run([sys.executable, FAMILY_SPEED, "a=ebm:examples/ebm_mnist_quick.toml",
                            "a=ebm:examples/ebm_mnist_quick.toml"], cwd=REPO, capture_output=True, text=True, timeout=120,
                           check=False)
    assert twice.returncode == 1 and twice.stderr.startswith("Error: label 'a' is used twice")


@pytest.mark.slow
def test_flow_step_benchmark_runs_every_variant(tmp_path):
    out = tmp_path / "flow_step.json"
    env = {**os.environ, "GENFRAME_DATA_DIR": str(tmp_path)}  # noise batches: the cost does not depend on the pixels
    done = subprocess.run([sys.executable, "benchmarks/flow_step.py", "--channels", "8", "16", "--batch", "4",
                           "--rounds", "2", "--steps", "1", "--warmup", "1", "--variants", "plain", "genframe",
                           "channels_last", "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert list(report["variants"]) == ["plain", "genframe", "channels_last"]
    assert all(len(v["rounds"]) == 2 and v["s_per_step"] > 0 for v in report["variants"].values())
    assert report["variants"]["plain"]["ratio_to_plain"] == 1.0


@pytest.mark.slow
def test_run_queue_trains_scores_and_skips_what_is_done(data_dir, tmp_path):
    # A run given in minutes becomes steps at its speed; "=EXPR" settings are worked out from those steps.
    plan = tmp_path / "plan.toml"
    plan.write_text('recipe = "flow"\n[speeds]\ntiny = 30.0\n[runs.tiny]\nminutes = 1.5\nspeed = "tiny"\n'
                    'set = { "trainer.batch_size" = 8, "data.limit" = 32, "model.channels" = [8, 16], '
                    '"model.time_dim" = 16, "sampler.nfe" = 2, "logging.sample_n" = 4, "logging.chain_n" = 0, '
                    '"trainer.lr_decay_steps" = "=steps", "trainer.warmup_steps" = "=steps // 3" }\n')
    out, runs = tmp_path / "out.json", tmp_path / "runs"
    command = [sys.executable, "research/scripts/run_queue.py", str(plan), "--out", str(out), "--runs", str(runs),
               "--n", "16"]
    queue = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (runs / "tiny" / "status.json").is_file() and queue.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    out.write_text(json.dumps({"other": {"eval": {"fd": 1.0}}}))  # another queue's run, finished meanwhile
    _, err = queue.communicate(timeout=300)
    assert queue.returncode == 0, err
    assert json.loads(out.read_text())["other"] == {"eval": {"fd": 1.0}}  # added to, not written over
    result = json.loads(out.read_text())["tiny"]
    assert result["steps"] == 3 and result["minutes_alone"] == 1.5 and result["eval"]["step"] == 3
    assert result["eval"]["n"] == 16 and result["eval"]["nfe"] == 2 and "fd" in result["eval"] and result["cpu"]
    config = json.loads((runs / "tiny" / "config.json").read_text())
    assert (config["trainer"]["lr_decay_steps"], config["trainer"]["warmup_steps"]) == (3, 1)
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and "[tiny] done: fd" in again.stdout and "genframe run" not in again.stdout


@pytest.mark.slow
def test_families_table_averages_seeds_and_draws_a_line_per_family_and_dataset(tmp_path):
    def result(fd: float, steps: int = 100, nfe: int | None = 20) -> dict:
        return {"steps": steps, "eval": {"fd": fd, "kid": fd, "precision": 0.5, "recall": 0.9, "confidence": 0.8,
                                         "nfe": nfe, "seconds_per_1000": 10.0}}
    results = {"flow-mnist-5min-seed0": result(10.0), "flow-mnist-5min-seed1": result(14.0),
               "flow-mnist-15min-seed0": result(6.0, 300), "ebm-mnist-5min": result(20.0),
               "ebm-fashion_mnist-5min": result(8.0, nfe=None), "not-a-family-run": {}}
    lane1, lane2, plot = tmp_path / "lane1.json", tmp_path / "lane2.json", tmp_path / "families.png"
    names = sorted(results)
    lane1.write_text(json.dumps({k: results[k] for k in names[::2]}))  # two queues that shared the machine
    lane2.write_text(json.dumps({k: results[k] for k in names[1::2]}))
    done = subprocess.run([sys.executable, "research/scripts/families_table.py", str(lane1), str(lane2),
                           "--plot", str(plot)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| flow") or line.startswith("| ebm")]
    assert rows[0].startswith("| ebm | mnist | 5 | 1 | 100 | 20.00 |")
    assert rows[1].startswith("| flow | mnist | 5 | 2 | 100 | 12.00 ± 2.83 |")  # mean and spread of the seeds
    assert rows[2].startswith("| flow | mnist | 15 | 1 | 300 | 6.00 |") and plot.stat().st_size > 0
    assert rows[3].startswith("| ebm | fashion_mnist | 5 | 1 | 100 | 8.00 |")  # MNIST first, then other data
    assert "| 30 Langevin steps | 10.0 |" in rows[3]  # no ODE count: the EBM's generation cost by its name
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    refused = subprocess.run([sys.executable, "research/scripts/families_table.py", str(empty)], cwd=REPO,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("Error: ")
    twice = subprocess.run([sys.executable, "research/scripts/families_table.py", str(lane1), str(lane1)], cwd=REPO,
                           capture_output=True, text=True, timeout=120, check=False)
    assert twice.returncode == 1 and twice.stderr.startswith("Error: ") and "repeats runs" in twice.stderr


def test_net_size_counts_the_multiply_adds_of_a_pass_and_tables_each_recipes_net(monkeypatch, capsys):
    net_size = research_script("net_size")
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(32, 3))
    assert net_size.multiply_adds(net, torch.zeros(1, 1, 4, 4)) == 16 * 2 * 9 + 3 * 32
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["net_size.py", "ebm=examples/ebm_mnist_fast.toml",
                                      "flow=examples/flow_mnist_fast.toml"])
    net_size.main()
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| ebm | `examples/ebm_mnist_fast.toml` | 76,993 | 0.86 |")  # the fast recipe's net
    assert rows[3].startswith("| flow | `examples/flow_mnist_fast.toml` |") and len(rows) == 4
    monkeypatch.setattr(sys, "argv", ["net_size.py", "ebm"])
    with pytest.raises(SystemExit, match="^Error: 'ebm' is not RECIPE=CONFIG"):
        net_size.main()
    assert capsys.readouterr().out == ""  # no table's head before the error


@pytest.mark.slow
def test_generation_speed_times_each_trained_model_in_interleaved_rounds(data_dir, tmp_path):
    import genframe

    genframe.train("flow", overrides=["trainer.device=cpu", "trainer.batch_size=8", "data.limit=32",
                                      "model.channels=[8,16]", "model.time_dim=16", "sampler.nfe=4",
                                      "trainer.max_steps=2", 'logging.loggers=["jsonl"]'],
                   run_dir=tmp_path / "flow", quiet=True)
    out = tmp_path / "gen.json"
    done = subprocess.run([sys.executable, "research/scripts/generation_speed.py", f"a={tmp_path / 'flow'}",
                           f"b={tmp_path / 'flow'}", "--n", "6", "--rounds", "2", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()[:4]] == ["round 1"] * 2 + ["round 2"] * 2
    report = json.loads(out.read_text())
    for label in ("a", "b"):
        assert report[label]["recipe"] == "flow" and report[label]["nfe"] == 4 and len(report[label]["rounds"]) == 2
        assert report[label]["seconds_per_1000"] == statistics.median(report[label]["rounds"]) > 0
    missing = subprocess.run([sys.executable, "research/scripts/generation_speed.py", f"a={tmp_path / 'none'}"],
                             cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("Error: ") and "does not exist" in missing.stderr

    # the sampling trials on the same run: the recipe's own sampler (1:1) scores what genframe eval does
    flow_sampling = research_script("flow_sampling")
    plain = genframe.evaluate(tmp_path / "flow", n=20, seed=0, log=False)["samples"]["fd"]
    assert flow_sampling.scored(tmp_path / "flow", 20, 1.0, 1.0)["fd"] == round(plain, 3)
    assert flow_sampling.scored(tmp_path / "flow", 20, 0.9, 0.5)["fd"] != round(plain, 3)  # other noise, other times
