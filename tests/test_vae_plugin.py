"""The example third-party plugin (examples/plugins/genframe-vae) through the core, unchanged.

The plugin is "installed" the way pip leaves it: its package directory on sys.path plus a
*.dist-info whose entry_points.txt is written from the example's own pyproject.toml, so discovery
runs through the real entry-point group. Then: train a few steps on real MNIST, resume, sample,
the config commands, the plugin listing, the Python API, and the conformance suite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
import wandb_records
from click.testing import CliRunner
from conftest import REPO
from example_plugins import install_example, sets
from PIL import Image
from test_loggers import wandb_files

import genframe
from genframe.cli.main import cli
from genframe.testing import RecipeContract
from genframe.training.checkpoint import load_checkpoint

EXAMPLE = REPO / "examples" / "plugins" / "genframe-vae"
PROJECT = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
# A narrow network on 64 images in batches of 16: 4-step epochs, so validation and epoch checkpoints run.
VAE_TINY = ["trainer.device=cpu", "trainer.batch_size=16", "data.limit=64", "model.channels=[8, 16]",
            "model.latent_dim=4", "logging.log_every=2", "logging.sample_n=8", "logging.chain_n=4"]


@pytest.fixture(autouse=True)
def vae_plugin_installed(tmp_path, monkeypatch) -> Path:
    return install_example(EXAMPLE, tmp_path / "site", monkeypatch)


def test_the_plugin_is_discovered_through_its_entry_point():
    host = genframe.get_host()
    info = {plugin.name: plugin for plugin in host.plugins}
    assert info["vae"].version == PROJECT["version"] == "0.1.0"
    assert info["vae"].source == "entry point genframe_vae.plugin" and info["vae"].hooks == ["genframe_register"]
    assert {e.name for e in host.registry.entries() if e.plugin == "vae"} == {"vae", "conv_vae"}
    assert host.failures == []
    listed = CliRunner().invoke(cli, ["plugins"])
    assert listed.exit_code == 0, listed.output
    assert "vae 0.1.0 (entry point genframe_vae.plugin)  hooks: genframe_register" in listed.output
    recipes = next(line for line in listed.output.splitlines() if line.startswith("  recipe:"))
    assert "ebm [ebm]" in recipes and "vae [vae]" in recipes


def test_config_show_and_schema():
    runner = CliRunner()
    shown = runner.invoke(cli, ["config", "show", "vae"])
    assert shown.exit_code == 0, shown.output
    config = tomllib.loads(shown.output)  # the output is itself a valid config file
    assert config["model"] == {"in_channels": 1, "image_size": 32, "channels": [32, 64, 128], "latent_dim": 16}
    assert (config["trainer"]["lr"], config["trainer"]["batch_size"], config["trainer"]["epochs"]) == (1e-3, 128, 10)
    changed = runner.invoke(cli, ["config", "show", "vae", "--set", "model.latent_dim=8", "--format", "json"])
    assert json.loads(changed.output)["model"]["latent_dim"] == 8
    schema = json.loads(runner.invoke(cli, ["config", "schema", "vae"]).output)
    assert {"model", "sampler", "trainer", "data", "logging"} <= set(schema["properties"])
    wrong = runner.invoke(cli, ["config", "show", "vae", "--set", "model.latent=8"])
    assert wrong.exit_code == 2 and "model.latent: unknown key (did you mean model.latent_dim?)" in wrong.output


def test_example_config_is_exactly_the_defaults():
    # both resolved alike: recipe_config fills in the default callbacks' settings
    assert genframe.recipe_config("vae", EXAMPLE / "vae_mnist.toml") == genframe.recipe_config("vae", {"recipe": "vae"})


def test_elbo_terms_match_an_independent_computation():
    from genframe_vae.model import ConvVAE, elbo_terms
    from torch.distributions import Bernoulli, Normal, kl_divergence

    torch.manual_seed(0)
    model = ConvVAE(channels=(4, 8), latent_dim=3)
    images = torch.rand(5, 1, 32, 32) * 2 - 1
    noise = torch.randn(5, 3)
    terms = elbo_terms(model, images, noise)
    mean, log_var = model.encode(images)
    posterior = Normal(mean, (0.5 * log_var).exp())
    logits = model.decode(mean + posterior.scale * noise)
    log_likelihood = Bernoulli(logits=logits).log_prob((images > 0).float()).flatten(1).sum(1)
    kl = kl_divergence(posterior, Normal(0.0, 1.0)).sum(1)
    assert terms["recon"].item() == pytest.approx(-log_likelihood.mean().item(), rel=1e-5)
    assert terms["kl"].item() == pytest.approx(kl.mean().item(), rel=1e-5)
    assert terms["elbo"].item() == pytest.approx((log_likelihood - kl).mean().item(), rel=1e-5)


def test_cli_run_with_config_resume_and_sample(data_dir, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    config = str(EXAMPLE / "vae_mnist.toml")
    result = runner.invoke(cli, ["run", "vae", "--config", config, *sets([*VAE_TINY, "trainer.max_steps=6"]),
                                 "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    assert "elbo=" in result.output and "val/elbo=" in result.output  # the console shows the trainer's metrics
    result = runner.invoke(cli, ["run", "vae", "--resume", str(run), "--set", "trainer.max_steps=8", "--quiet"])
    assert result.exit_code == 0, result.output
    state = load_checkpoint(run)
    assert state["recipe"] == "vae" and state["plugin"] == "vae" and state["plugin_version"] == "0.1.0"
    assert (state["loop"]["epoch"], state["loop"]["batch"], state["loop"]["step"]) == (2, 0, 8)
    assert set(state["trainer"]) == {"optimizer", "generator"}

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4, 6, 8]  # no repeats after the resume
    assert all({"loss", "recon", "kl", "elbo"} <= set(r) for r in rows if "loss" in r)
    validation = [r for r in rows if "val/elbo" in r]
    assert [v["epoch"] for v in validation] == [1, 2]
    assert all(v["val/elbo"] == pytest.approx(-(v["val/recon"] + v["val/kl"])) for v in validation)
    pictures = sorted(p.name for p in (run / "samples").iterdir())
    assert pictures == ["final_chain.gif", *[f"step{step:07d}_{name}.png" for step in (4, 6, 8)  # epoch ends, run ends
                                             for name in ("reconstructions", "samples")]]

    grid = tmp_path / "grid.png"
    # --steps means nothing to a one-pass sampler and is accepted and ignored, like any recipe without steps
    result = runner.invoke(cli, ["sample", str(run), "--n", "9", "--steps", "20", "--out", str(grid),
                                 "--gif", str(tmp_path / "chain.gif")])
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (2 * (3 * 34 + 2), 2 * (3 * 34 + 2))  # 3x3 grid of 32px images
    assert Image.open(tmp_path / "chain.gif").n_frames == 1  # no intermediate states to animate


def test_python_api_trains_loads_and_samples(data_dir, tmp_path):
    settings = {"model": {"channels": [8, 16], "latent_dim": 4}, "data": {"limit": 512},
                "trainer": {"device": "cpu", "batch_size": 32, "max_steps": 16},
                "logging": {"loggers": ["jsonl"], "log_every": 4, "sample_n": 4, "chain_n": 0}}
    result = genframe.train("vae", settings, run_dir=tmp_path / "api")
    assert result.status == "completed" and result.step == 16
    assert {"loss", "recon", "kl", "elbo", "val/elbo"} <= set(result.metrics)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "api" / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert losses[-1] < losses[0]  # it learns: the bound tightens within a few steps
    loaded = genframe.load(tmp_path / "api", device="cpu")
    images = loaded.sample(6, seed=1).images
    assert images.shape == (6, 1, 32, 32) and -1 <= float(images.min()) and float(images.max()) <= 1
    assert torch.equal(images, loaded.sample(6, seed=1).images) and not torch.equal(images, loaded.sample(6).images)


def test_wandb_and_plot_take_the_vae_metrics_and_pictures(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("vae", overrides=[*VAE_TINY, "trainer.max_steps=6", 'logging.loggers=["jsonl", "wandb"]',
                                     "logging.wandb.mode=offline", "logging.wandb.project=tests"], run_dir=run)
    (datastore,) = wandb_files(run)  # waits for W&B's service to finish writing
    rows = wandb_records.history(datastore)
    assert [r["trainer/step"] for r in rows if "elbo" in r] == [2, 4, 6]
    assert [r["trainer/step"] for r in rows if "val/elbo" in r] == [4]
    assert [r["trainer/step"] for r in rows if "samples/reconstructions/path" in r] == [4, 6]
    assert wandb_records.config(datastore)["model"]["latent_dim"] == 4
    result = CliRunner().invoke(cli, ["plot", str(run), "--metric", "elbo"])
    assert result.exit_code == 0 and (run / "curves.png").is_file(), result.output


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this PyTorch build has no torch.distributed with gloo")
def test_torchrun_trains_the_vae_on_two_processes(data_dir, tmp_path, vae_plugin_installed):
    run = tmp_path / "run"
    path = os.pathsep.join([str(vae_plugin_installed), str(EXAMPLE), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "genframe",
               "run", "vae", *sets([*VAE_TINY, "data.limit=128", "trainer.epochs=2", "logging.chain_n=0"]),
               "--run-dir", str(run), "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 and "terminate called without an active exception" in result.stderr:
        # Seen about once in six runs on torch 2.13 CPU: a worker aborts in C++ teardown (a joinable
        # std::thread destroyed). Not yet traced to genframe; one fresh retry, any other failure fails.
        shutil.rmtree(run, ignore_errors=True)
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(run)
    assert state["loop"]["step"] == 8  # 128 images / 2 processes / batch 16 = 4 steps per epoch
    generators = [rank["generator"] for rank in state["trainer_ranks"]]
    assert len(generators) == 2 and not torch.equal(*generators)  # each process its own noise
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"elbo"' in line]
    assert steps == [2, 4, 6, 8]  # logged once, by rank 0


def test_the_core_never_mentions_the_plugin():
    offenders = [str(path) for root in (REPO / "genframe", REPO / "plugins" / "ebm")
                 for path in Path(root).rglob("*.py") if "vae" in path.read_text().lower()]
    assert offenders == []


class TestVAEConformance(RecipeContract):
    recipe = "vae"
    overrides = VAE_TINY

    @pytest.fixture(autouse=True)
    def _mnist(self, data_dir):  # skips cleanly where MNIST is missing
        pass


def test_genframe_eval_scores_the_vae_on_the_same_scale(data_dir, tmp_path):
    """The core's sample-quality metric takes a one-pass sampler as it is.

    The metric's classifier is trained once per test session and shared with tests/test_eval.py, which
    runs first; run on its own, this test trains it first (a minute or two on 2 busy cores).
    """
    run = tmp_path / "run"
    genframe.train("vae", overrides=[*VAE_TINY, "trainer.max_steps=4"], run_dir=run, quiet=True)
    result = CliRunner().invoke(cli, ["eval", str(run), "--n", "64"])
    assert result.exit_code == 0, result.output
    assert "vae at step 4: 64 samples" in result.output and "uniform noise" in result.output
    report = json.loads((run / "eval.json").read_text())
    assert report["recipe"] == "vae" and report["steps"] is None
    assert report["anchors"]["train"]["fd"] < report["samples"]["fd"]  # four tiny steps are not MNIST yet
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["eval/fd"] == report["samples"]["fd"]
