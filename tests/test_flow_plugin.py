"""The flow plugin (plugins/flow): its sampler's completion against a flow with a known end, and the whole of
it on real MNIST through the same commands as the EBM
(run, resume, sample with a GIF and a .npy, eval, score, ood, inpaint, denoise, export and load)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from genframe_flow.sampler import ODESampler

import genframe
from genframe.cli.main import cli
from genframe.testing import RecipeContract

TINY = ["trainer.device=cpu", "trainer.batch_size=16", "data.limit=64", "model.channels=[8,16]", "model.time_dim=16",
        "sampler.nfe=4", "logging.sample_n=4", "logging.chain_n=2", "logging.log_every=2", 'logging.loggers=["jsonl"]']


def sets(settings):
    return [arg for item in settings for arg in ("--set", item)]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_inpainting_holds_the_known_pixels_and_a_flow_to_a_point_reaches_it():
    target = torch.full((1, 4, 4), 0.5)

    class ToPoint(torch.nn.Module):  # the exact velocity of straight paths to one image: (target - x) / (1 - t)
        def forward(self, x, t):
            return (target - x) / (1 - t.view(-1, 1, 1, 1)).clamp_min(1e-3)

    sampler = ODESampler((1, 4, 4), "euler", nfe=8)
    samples = sampler.generate(ToPoint(), 3, generator=torch.Generator().manual_seed(0)).images
    assert torch.allclose(samples, target.expand(3, 1, 4, 4), atol=1e-5)
    images = torch.rand(2, 1, 4, 4) * 2 - 1
    known = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    known[..., :2, :] = True
    done = sampler.refine(ToPoint(), images, known, generator=torch.Generator().manual_seed(1))
    assert torch.equal(done[..., :2, :], images[..., :2, :]) and torch.allclose(done[..., 2:, :], torch.tensor(0.5))


def test_the_adaptive_solver_keeps_a_frame_about_every_keep_every_evaluations():
    class Spiral(torch.nn.Module):  # a velocity that turns with time, so the solver takes several steps
        def forward(self, x, t):
            return torch.cos(6 * t).view(-1, 1, 1, 1) * x + 1

    sampler = ODESampler((1, 4, 4), "adaptive", nfe=20, rtol=1e-5, atol=1e-5)
    out = sampler.sample(Spiral(), torch.zeros(2, 1, 4, 4), keep_every=6)
    asked = out.nfe / 6
    assert out.nfe == sampler.last_nfe > 30 and asked / 2 <= len(out.chain) <= asked * 2, (out.nfe, len(out.chain))


def test_a_net_with_no_levels_is_refused_in_one_error_line(tmp_path):
    result = invoke("run", "flow", "--run-dir", tmp_path / "run", "--set", "model.channels=[]")
    assert result.exit_code == 2 and "model.channels" in result.output and "at least 1 item" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    import os

    if not os.path.isdir(os.path.join(os.environ.get("GENFRAME_DATA_DIR", ""), "mnist")):
        pytest.skip("MNIST not found; set GENFRAME_DATA_DIR")
    run = tmp_path_factory.mktemp("flow") / "run"
    result = invoke("run", "flow", "--run-dir", run, "--quiet", *sets([*TINY, "trainer.max_steps=4"]))
    assert result.exit_code == 0, result.output
    return run


def test_flow_trains_resumes_samples_and_evaluates_on_mnist(flow_run, tmp_path):
    rows = [json.loads(line) for line in (flow_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [2, 4] and all(math.isfinite(r["loss"]) for r in rows if "loss" in r)
    assert (flow_run / "samples" / "final_chain.gif").stat().st_size > 0
    resumed = invoke("run", "flow", "--resume", flow_run, "--quiet", "--set", "trainer.max_steps=6")
    assert resumed.exit_code == 0, resumed.output
    out, gif, npy = tmp_path / "grid.png", tmp_path / "chain.gif", tmp_path / "s.npy"
    sampled = invoke("sample", flow_run, "--n", 8, "--out", out, "--gif", gif, "--tensor", npy)
    assert sampled.exit_code == 0, sampled.output
    assert "8 samples in " in sampled.output and "s per 1000, 4 function evaluations each); wrote" in sampled.output
    import numpy

    array = numpy.load(npy)
    assert array.shape == (8, 1, 32, 32) and -1 <= array.min() and array.max() <= 1
    evaluated = invoke("eval", flow_run, "--n", 32, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["recipe"] == "flow" and {"fd", "kid", "precision", "recall"} <= set(report["samples"])
    assert report["nfe"] == 4 and report["seconds_per_1000"] > 0  # midpoint: 2 evaluations a step, 2 steps
    exported = invoke("export", flow_run, "--out", tmp_path / "shared", "--grid-n", 4)
    assert exported.exit_code == 0, exported.output
    assert genframe.load(tmp_path / "shared").sample(2).images.shape == (2, 1, 32, 32)


def test_flow_scores_completes_and_cleans_through_the_ebms_commands(flow_run, tmp_path):
    scored = invoke("score", flow_run, "mnist:test", "noise", "--n", 4, "--out", tmp_path / "s.csv", "--json")
    assert scored.exit_code == 0, scored.output
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "input,index,score" and len(lines) == 9 and all(math.isfinite(float(x.split(",")[2]))
                                                                      for x in lines[1:])
    again = invoke("score", flow_run, "mnist:test", "--n", 4, "--out", tmp_path / "t.csv", "--seed", 1)
    assert again.exit_code == 0  # another Hutchinson probe: another estimate of the same likelihood
    assert (tmp_path / "t.csv").read_text() != "\n".join(lines[:5]) + "\n"
    completed = invoke("inpaint", flow_run, "--images", "mnist:test", "--mask", "bottom-half", "--n", 4,
                       "--out", tmp_path / "inpaint.png")  # the default --match: no pool drawn for an ODE sampler
    assert completed.exit_code == 0, completed.output
    assert json.loads((flow_run / "inpaint.json").read_text())["match"] == 0
    detected = invoke("ood", flow_run, "--out", "noise", "--n", 8, "--json")
    assert detected.exit_code == 0, detected.output
    cleaned = invoke("denoise", flow_run, "--images", "mnist:test", "--noise", 0.3, "--n", 4,
                     "--out", tmp_path / "denoise.png")
    assert cleaned.exit_code == 0, cleaned.output
    assert (tmp_path / "inpaint.png").stat().st_size > 0 and (tmp_path / "denoise.png").stat().st_size > 0


class TestFlowConformance(RecipeContract):
    """genframe's conformance suite against the flow recipe, on tiny settings."""

    recipe = "flow"
    overrides = ("trainer.batch_size=16", "data.limit=64", "model.channels=[8,16]", "model.time_dim=16",
                 "sampler.nfe=4", "logging.sample_n=4")


def test_flow_trains_on_a_colour_folder_of_your_own(tmp_path):
    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    generator = torch.Generator().manual_seed(0)
    for i in range(40):
        pixels = (torch.rand(32, 32, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"p{i:02d}.png")
    run = tmp_path / "run"
    result = invoke("run", "flow", "--run-dir", run, "--quiet",
                    *sets([*TINY, "trainer.max_steps=2", "data.name=imagefolder", f"data.path={folder}",
                           "data.limit=32", "callbacks.disable=[\"evaluation\", \"keep_best\"]"]))
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["model"]["in_channels"] == 3  # followed the data
    assert genframe.load(run).sample(2).images.shape == (2, 3, 32, 32)


@pytest.mark.slow
def test_flow_under_torchrun_trains_one_model_with_each_process_its_own_draws(tmp_path, data_dir):
    import os
    import subprocess
    import sys

    from genframe.training.checkpoint import load_checkpoint

    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "genframe",
               "run", "flow", "--run-dir", str(run), "--quiet", *sets([*TINY, "trainer.max_steps=4"])]
    result = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(run)
    generators = [rank["generator"] for rank in state["trainer_ranks"]]
    assert state["loop"]["step"] == 4 and len(generators) == 2 and not torch.equal(*generators)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == [2, 4]  # logged once, by the main process


@pytest.mark.slow  # two runs, each its own process
def test_flow_sweeps_a_grid_and_summarises_it_on_the_ruler(data_dir, tmp_path):
    import csv

    runs = tmp_path / "sweep"
    settings = [*TINY, "trainer.max_steps=2", "callbacks.evaluation.every_steps=2", "callbacks.evaluation.n=16"]
    result = invoke("sweep", "flow", *sets(settings), "--grid", "trainer.time_sampling=uniform,logit_normal",
                    "--runs-dir", runs)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((runs / "summary.csv").open()))
    assert [r["trainer.time_sampling"] for r in rows] == ["uniform", "logit_normal"]
    assert {r["status"] for r in rows} == {"completed"} and {r["step"] for r in rows} == {"2"}
    for row in rows:  # the ruler's metrics, measured during training, with their goals
        assert all(math.isfinite(float(row[f"eval/{k} final"])) for k in ("fd", "kid", "precision", "recall"))
    assert "eval/kid: lower" in (runs / "summary.md").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_flow_trains_resumes_samples_scores_and_completes_on_a_gpu(data_dir, tmp_path):
    run = tmp_path / "run"
    gpu = [setting for setting in TINY if not setting.startswith("trainer.device")] + ["trainer.device=cuda"]
    trained = invoke("run", "flow", "--run-dir", run, "--quiet", *sets([*gpu, "trainer.max_steps=2"]))
    assert trained.exit_code == 0, trained.output
    resumed = invoke("run", "flow", "--resume", run, "--quiet", "--set", "trainer.max_steps=4")
    assert resumed.exit_code == 0, resumed.output
    for command in (["eval", run, "--n", 32, "--device", "cuda"],
                    ["score", run, "mnist:test", "--n", 4, "--out", tmp_path / "s.csv", "--device", "cuda"],
                    ["inpaint", run, "--images", "mnist:test", "--mask", "center", "--n", 4, "--out",
                     tmp_path / "i.png", "--device", "cuda"]):
        done = invoke(*command)
        assert done.exit_code == 0, done.output
    assert genframe.load(run, device="cuda").sample(2).images.device.type == "cuda"
