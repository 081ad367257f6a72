"""Evaluation refuses, in one line and before any work, a recipe without a metric of its own whose samples the
core's classifier cannot measure: labelled 2-D points stored as (1, 1, 2) "images" (as a tensor file of N x 1 x 2
points reads) would otherwise train the image classifier on them and report an fd that means nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conditional_recipes import Blobs

import genframe
from genframe import DataConfig, LoggingConfig, RecipeConfig, TrainerConfig
from genframe.cli.main import cli
from genframe.contracts.errors import PluginError
from genframe.plugins.host import get_host
from genframe.using import evaluate as evaluate_module
from genframe.using.classifier import cache_dir

TINY = ["trainer.max_steps=2", "trainer.device=cpu", "logging.log_every=1", 'logging.loggers=["jsonl"]']
SHAPE = "(1, 1, 2)"


class StackedBlobs(Blobs):
    """The four labelled blobs of tests/conditional_recipes.py, 128 points a split, each stored as (1, 1, 2)."""

    name = "stacked_blobs"
    size = 128

    def __init__(self, split: str = "train", root: str | None = None, download: bool = True) -> None:
        super().__init__(split, root, download)
        self.points = self.points.reshape(-1, 1, 1, 2)

    @property
    def example_shape(self) -> tuple[int, ...]:
        return (1, 1, 2)


class Shift(genframe.Sampler):
    """Noise moved once by the model: enough to draw samples shaped like the data."""

    generate_steps = 1

    def init_state(self, n, device="cpu", generator=None):
        return torch.randn((n, 1, 1, 2), generator=generator, device=device)

    def sample(self, model, init, steps=None, keep_every=None, generator=None):
        with torch.no_grad():
            return genframe.SampleOutput(init + model(init), [])


class Regress(genframe.Trainer):
    """Regress the model's output on the data (a stand-in for any real objective)."""

    steps = 0  # train steps taken, in any run

    def __init__(self, model) -> None:
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def train_step(self, batch):
        Regress.steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss = ((self.model(torch.zeros_like(batch)) - batch) ** 2).mean()
        loss.backward()
        return {"loss": loss.detach()}

    def validate(self, dataset):
        return {}

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


class StackedData(DataConfig):
    name: str = "stacked_blobs"


class Small(TrainerConfig):
    batch_size: int = 16


class NoPictures(LoggingConfig):
    sample_n: int = 0
    chain_n: int = 0


class StackedConfig(RecipeConfig):
    data: StackedData = StackedData()
    trainer: Small = Small()
    logging: NoPictures = NoPictures()


class NoMetricRecipe(genframe.Recipe):
    """2-D points and no quality metric of its own (Recipe.quality_metric: None): the core's would be asked."""

    name = "stacked_points"
    config_class = StackedConfig

    def build_model(self, config):
        return torch.nn.Linear(2, 2)  # acts on the last dimension: takes (N, 1, 1, 2)

    def build_sampler(self, config):
        return Shift()

    def build_trainer(self, config, model, sampler, device):
        return Regress(model)

    def draw_samples(self, samples, path: Path) -> Path:
        path.write_bytes(samples.float().cpu().numpy().tobytes())
        return path


@pytest.fixture
def stacked():
    registry = get_host().registry
    with registry.registering("stacked"):
        registry.add("dataset", StackedBlobs.name, StackedBlobs)
        registry.add("recipe", NoMetricRecipe.name, NoMetricRecipe())


def assert_the_refusal(text: str, instead: str = "") -> None:
    assert "\n" not in text
    assert text == (f"recipe 'stacked_points' makes samples of shape {SHAPE}, like the examples of dataset "
                    "'stacked_blobs', which the core's quality metric cannot measure: its classifier measures images "
                    "(C, H, W) at least 8 pixels a side; give the recipe a quality_metric (Recipe.quality_metric) "
                    f"that measures its samples{instead}")


def test_genframe_eval_refuses_samples_that_are_not_images_in_one_line_before_drawing_them(stacked, tmp_path,
                                                                                            monkeypatch):
    run = tmp_path / "run"
    genframe.train("stacked_points", overrides=TINY, run_dir=run, quiet=True)  # no evaluations asked: it trains
    drawn = []
    monkeypatch.setattr(evaluate_module, "generate_in_chunks", lambda *args, **kwargs: drawn.append(args))
    result = CliRunner().invoke(cli, ["eval", str(run), "--n", "16"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.splitlines()
    assert line.startswith("Error: ")
    assert_the_refusal(line.removeprefix("Error: "))
    assert drawn == [] and not (run / "eval.json").exists() and not (run / "samples").exists()
    assert not list(cache_dir().glob("stacked_blobs*"))  # no image classifier trained on the points
    with pytest.raises(PluginError) as caught:  # the Python API alike
        genframe.evaluate(run, n=16)
    assert_the_refusal(str(caught.value))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert not any(key.startswith("eval/") for row in rows for key in row)


def test_training_with_evaluations_refuses_such_a_recipe_before_its_first_step(stacked, tmp_path):
    Regress.steps = 0
    with pytest.raises(PluginError) as caught:
        genframe.train("stacked_points", overrides=[*TINY, "callbacks.evaluation.every_steps=1"],
                       run_dir=tmp_path / "run", quiet=True)
    assert_the_refusal(str(caught.value), ", or schedule no evaluations (callbacks.evaluation every_epochs, "
                                          "every_minutes, every_steps)")
    assert Regress.steps == 0 and not (tmp_path / "run" / "checkpoints").exists()
    result = CliRunner().invoke(cli, ["run", "stacked_points", *[a for s in TINY for a in ("--set", s)],
                                      "--set", "callbacks.evaluation.every_epochs=1", "--run-dir", str(tmp_path / "b")])
    assert result.exit_code == 2 and Regress.steps == 0, result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error: ")] == [
        line for line in result.output.splitlines() if "Error" in line or "Traceback" in line]
    assert "Error: recipe 'stacked_points' makes samples of shape (1, 1, 2)" in result.output


class WithMetricRecipe(NoMetricRecipe):
    """The same points with a metric of its own: measured, during training and by genframe eval."""

    name = "stacked_points_measured"

    def quality_metric(self, config, registry):
        return lambda samples: {"spread": float(samples.std())}


def test_the_same_points_with_a_metric_of_their_own_are_measured(stacked, tmp_path):
    get_host().registry.add("recipe", WithMetricRecipe.name, WithMetricRecipe())
    run = tmp_path / "run"
    genframe.train("stacked_points_measured", overrides=[*TINY, "callbacks.evaluation.every_steps=1",
                                                         "callbacks.evaluation.n=8"], run_dir=run, quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "eval/spread" in row] == [1, 2]
    assert genframe.evaluate(run, n=8)["samples"]["spread"] > 0
