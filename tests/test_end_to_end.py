"""End to end on real MNIST: train a few steps, checkpoint, resume, sample; the CLI and the Python API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest
import torch
from click.testing import CliRunner
from conftest import REPO, TINY
from PIL import Image

import genframe
from genframe.cli.main import cli
from genframe.training.checkpoint import load_checkpoint

# 64 training images in batches of 16: a 4-step epoch, so validation and epoch checkpoints run too.
SMALL_EPOCHS = [*TINY, "data.limit=64", "trainer.max_steps=null"]


def test_train_writes_a_complete_run_directory(data_dir, tmp_path):
    result = genframe.train("ebm", overrides=[*SMALL_EPOCHS, "trainer.epochs=2"], run_dir=tmp_path / "run")
    run = tmp_path / "run"
    assert result.status == "completed" and result.step == 8
    saved = json.loads((run / "config.json").read_text())
    assert saved["trainer"]["batch_size"] == 16 and saved["sampler"]["step_size"] == 10.0
    assert saved["callbacks"]["divergence_guard"]["max_rollbacks"] == 3  # the default callbacks' settings, in full
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [line["step"] for line in lines if "loss" in line]
    assert steps == [2, 4, 6, 8]
    assert [line["epoch"] for line in lines if "loss" in line] == [0, 0, 1, 1]
    validation = [line for line in lines if "val/cdiv" in line]
    assert [v["epoch"] for v in validation] == [1, 2]
    assert all(abs(v["val/cdiv"] - (v["val/fake"] - v["val/real"])) < 1e-5 for v in validation)
    grids = sorted(p.name for p in (run / "samples").iterdir())
    assert grids == ["final_chain.gif", "step0000004_buffer.png", "step0000004_samples.png",
                     "step0000008_buffer.png", "step0000008_samples.png"]
    assert Image.open(run / "samples" / "final_chain.gif").n_frames == 21  # start + every step of 20
    state = load_checkpoint(run)
    assert state["recipe"] == "ebm" and state["plugin"] == "ebm" and {k: v for k, v in state["loop"].items() if k != "train_seconds"} == {"epoch": 2, "batch": 0, "step": 8, "rollbacks": 0, "world_size": 1}
    assert 0 < state["loop"]["train_seconds"] < 60
    assert state["genframe_version"] == genframe.__version__ and len(state["config_hash"]) == 16
    assert state["trainer"]["buffer"]["size"] == 64  # 16 initial + 8 * 16 pushed, capped at 64
    assert state["format"] == 2 and set(state["callbacks"]) == {"divergence_guard", "evaluation", "keep_best"}


def test_every_epoch_sees_every_example_once_in_a_new_order(data_dir, tmp_path, monkeypatch):
    from genframe_ebm.trainer import CDTrainer

    seen, real_step = [], CDTrainer.train_step

    def recording(self, batch):
        seen.append(batch.flatten(1).sum(1))  # a fingerprint per image
        return real_step(self, batch)

    monkeypatch.setattr(CDTrainer, "train_step", recording)
    genframe.train("ebm", overrides=[*SMALL_EPOCHS, "trainer.epochs=2"], run_dir=tmp_path / "run", quiet=True)
    first, second = torch.cat(seen[:4]), torch.cat(seen[4:])
    assert len(seen) == 8 and torch.equal(first.sort().values, second.sort().values)  # the same 64 images
    assert not torch.equal(first, second)  # reshuffled


def test_resume_continues_exactly_where_a_straight_run_would_be(data_dir, tmp_path):
    straight = genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=10"], run_dir=tmp_path / "straight")
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=4"], run_dir=tmp_path / "resumed")
    resumed = genframe.train("ebm", overrides=["trainer.max_steps=10"], resume=tmp_path / "resumed")
    assert resumed.step == straight.step == 10
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert torch.equal(a["trainer"]["buffer"]["storage"], b["trainer"]["buffer"]["storage"])
    a["loop"].pop("train_seconds"), b["loop"].pop("train_seconds")
    assert a["loop"] == b["loop"]
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]  # no repeats, nothing lost
    assert (tmp_path / "resumed" / "config.step4.json").exists()  # the changed config is kept, not overwritten


def test_cli_run_resume_and_sample(data_dir, tmp_path):
    runner = CliRunner()
    run = tmp_path / "cli-run"
    sets = [arg for item in TINY for arg in ("--set", item)]
    result = runner.invoke(cli, ["run", "ebm", *sets, "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    assert f"run completed: {run}" in result.output
    result = runner.invoke(cli, ["run", "ebm", "--resume", str(run), "--set", "trainer.max_steps=8"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run)["loop"]["step"] == 8

    grid, gif = tmp_path / "grid.png", tmp_path / "chain.gif"
    result = runner.invoke(cli, ["sample", str(run), "--n", "9", "--steps", "20", "--out", str(grid), "--gif", str(gif)])
    assert result.exit_code == 0, result.output
    image = Image.open(grid)
    assert image.size == (2 * (3 * 34 + 2), 2 * (3 * 34 + 2))  # 3x3 grid of 32px images, 2px padding, scale 2
    animation = Image.open(gif)
    assert animation.n_frames == 21  # the start and each of 20 steps (20 steps / 50 frames -> every step)


def test_cli_errors_are_one_line_with_nonzero_exit(data_dir, tmp_path):
    runner = CliRunner()
    cases = [
        (["run", "emb"], "unknown recipe 'emb'. Did you mean 'ebm'?"),
        (["run", "ebm", "--set", "trainer.epochs"], "must look like section.key=value"),
        (["run", "ebm", "--set", "trainer.epochs=abc"], "trainer.epochs: Input should be a valid integer"),
        (["run", "ebm", "--config", str(tmp_path / "missing.toml")], "does not exist"),
        (["run", "ebm", "--resume", str(tmp_path)], "has no checkpoint"),
        (["sample", str(tmp_path / "nothing")], "does not exist"),
        (["config", "show", "nope"], "unknown recipe 'nope'"),
    ]
    if not torch.cuda.is_available():
        cases.append((["run", "ebm", "--set", "trainer.device=cuda"], "no CUDA GPU is available"))
    for args, fragment in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert fragment in result.output, (args, result.output)
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_existing_run_directory_is_never_overwritten(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    result = CliRunner().invoke(cli, ["run", "ebm", "--run-dir", str(run)])
    assert result.exit_code == 2 and "already exists; continue it with --resume" in result.output
    assert (run / "checkpoints" / "last.pt").read_bytes() == before


def test_config_commands():
    runner = CliRunner()
    shown = runner.invoke(cli, ["config", "show", "ebm", "--set", "trainer.epochs=3"])
    assert shown.exit_code == 0 and "epochs = 3" in shown.output and "[sampler]" in shown.output
    # settings with no value are shown as comments (TOML has no null), and the text is still a config file
    assert "# max_steps: not set" in shown.output and "# lr_decay_steps: not set" in shown.output
    shown_config = tomllib.loads(shown.output)
    assert shown_config["trainer"]["epochs"] == 3 and "max_steps" not in shown_config["trainer"]
    schema = json.loads(runner.invoke(cli, ["config", "schema", "ebm"]).output)
    assert {"trainer", "sampler", "buffer", "model", "data", "logging"} <= set(schema["properties"])


@pytest.mark.slow
def test_api_example_runs_from_another_directory(data_dir, tmp_path):
    env = {**os.environ, "GENFRAME_DATA_DIR": str(data_dir)}
    out = subprocess.run([sys.executable, str(REPO / "examples" / "api.py"), str(tmp_path / "api-run")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "trained 20 steps" in out.stdout and "sampled (16, 1, 32, 32)" in out.stdout
    assert "chain of 6 states" in out.stdout
    assert (tmp_path / "api-run" / "api_samples.png").is_file()


@pytest.mark.slow
def test_max_minutes_ends_the_run_completed_and_resumable(data_dir, tmp_path):
    run = tmp_path / "run"
    # 0.0005 minutes (30 ms) of training: over after the first step or two, mid-epoch
    timed = [*TINY, "data.limit=640", "trainer.max_steps=null", "trainer.epochs=1", "trainer.max_minutes=0.0005"]
    result = CliRunner().invoke(cli, ["run", "ebm", "--run-dir", str(run), "--quiet",
                                      *[arg for item in timed for arg in ("--set", item)]])
    assert result.exit_code == 0, result.output
    step = load_checkpoint(run / "checkpoints" / "last.pt")["loop"]["step"]
    assert 1 <= step < 40  # an epoch is 40 steps
    assert f"run completed: {run} (step {step}," in result.output
    assert (f"stopped early: trainer.max_minutes=0.0005 of training reached at step {step}; to train on, "
            "resume with a larger trainer.max_minutes") in result.output
    again = CliRunner().invoke(cli, ["run", "ebm", "--resume", str(run)])
    assert again.exit_code == 2 and "already trained" in again.output and "trainer.max_minutes=0.0005" in again.output
    assert len(again.output.strip().splitlines()) == 1
    resumed = genframe.train("ebm", overrides=["trainer.max_minutes=60"], resume=run)
    assert resumed.status == "completed" and resumed.step == 40 and resumed.stopped is None


def test_bare_settings_after_the_recipe_are_overrides_as_a_wandb_sweep_agent_passes_them(data_dir, tmp_path):
    from click.testing import CliRunner

    from genframe.cli.main import cli
    from genframe.training.checkpoint import load_checkpoint

    tiny = [s for s in TINY if not s.startswith("trainer.max_steps")]
    result = CliRunner().invoke(cli, ["run", "ebm", *tiny, "trainer.max_steps=2", "trainer.lr=0.0003", "seed=7",
                                      "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    config = load_checkpoint(tmp_path / "run")["config"]
    assert config["trainer"]["lr"] == 0.0003 and config["seed"] == 7 and config["trainer"]["max_steps"] == 2
    stray = CliRunner().invoke(cli, ["run", "ebm", "trainer.lr=0.1", "oops", "--run-dir", str(tmp_path / "x")])
    assert stray.exit_code == 2 and "unexpected argument 'oops'" in stray.output and not (tmp_path / "x").exists()
