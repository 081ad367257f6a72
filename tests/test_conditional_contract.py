"""Contracts a conditional model meets: a net that takes a time (flow matching, diffusion, score models) or a
time and a class label trains, samples and evaluates through the core like the EBM does.

The pre-run check calls the net as ``Recipe.model_inputs`` says, and when the call is refused it names what
was called and points at that hook, not at settings; a class-conditional trainer (``Trainer.takes_labels``)
gets each batch's labels; the core makes the folders it hands the recipe to draw into.
"""

from __future__ import annotations

import pytest
import torch
from conditional_recipes import Blobs, register

import genframe
from genframe.contracts.errors import ConfigError
from genframe.plugins.host import get_host
from genframe.testing import RecipeContract

TINY = ["trainer.max_steps=6", "trainer.device=cpu", "logging.log_every=2", 'logging.loggers=["jsonl"]']


@pytest.fixture
def recipes():
    register(get_host().registry)


def test_a_net_that_takes_a_time_is_checked_as_its_recipe_calls_it(recipes, tmp_path):
    run = tmp_path / "run"
    result = genframe.train("flow_points", overrides=TINY, run_dir=run, quiet=True)
    assert result.step == 6
    assert (run / "samples" / "step0000006_samples.png").stat().st_size == 64 * 2 * 4  # drawn into a folder the core made
    loaded = genframe.load(run)
    samples = loaded.sample(16, seed=1).images
    assert samples.shape == (16, 2) and torch.isfinite(samples).all()
    report = genframe.evaluate(run, n=64)
    assert 0 < report["samples"]["blob_distance"] < 10


def test_a_refused_call_names_the_call_and_points_at_model_inputs_not_at_settings(recipes, tmp_path):
    with pytest.raises(ConfigError) as caught:
        genframe.train("flow_points_plain", overrides=TINY, run_dir=tmp_path / "run", quiet=True)
    text = str(caught.value)
    assert "\n" not in text and not (tmp_path / "run").exists()
    assert text.startswith("model: the pre-run check called the flow_points_plain model as model(float32 (2, 2)) on "
                           "dataset blobs's examples of shape (2,) and it refused the arguments (TypeError: ")
    assert "missing 1 required positional argument: 't'" in text
    assert text.endswith("needs its recipe to override Recipe.model_inputs to give them (docs/writing-plugins.md, "
                         "'How the model is called')")
    assert "change the model settings" not in text


def test_a_model_inputs_that_fails_is_named_itself_not_the_model(recipes, tmp_path):
    from conditional_recipes import FlowRecipe

    class Broken(FlowRecipe):
        name = "flow_points_broken"

        def model_inputs(self, config, examples):
            return (examples, examples.time)  # no such attribute

    registry = get_host().registry
    with registry.registering("broken"):
        registry.add("recipe", Broken.name, Broken())
    with pytest.raises(genframe.PluginError, match=r"^recipe 'flow_points_broken': Recipe.model_inputs\(config, "
                                                   r"examples\) failed on examples of shape \(2, 2\): AttributeError: "):
        genframe.train(Broken.name, overrides=TINY, run_dir=tmp_path / "run", quiet=True)


def test_a_class_conditional_trainer_gets_each_batchs_labels(recipes, tmp_path):
    run = genframe.TrainingRun("flow_points_labelled", overrides=TINY, run_dir=tmp_path / "run", quiet=True)
    parts = run.build()
    trainer = parts.trainer
    from genframe.training.loop import TrainingLoop

    TrainingLoop(run, parts).run()
    run.release()
    assert len(trainer.seen) == 6
    data = Blobs("train")
    for points, labels in trainer.seen:  # each label is the one the dataset holds for that very point
        assert labels.dtype == torch.long and len(labels) == 32
        where = torch.cdist(points, data.points).argmin(dim=1)
        assert torch.equal(data.points[where], points) and torch.equal(data.labels[where], labels)
    samples = genframe.load(tmp_path / "run").sample(8).images
    assert samples.shape == (8, 2)


def test_a_class_conditional_recipe_on_data_without_labels_is_refused_before_any_work(recipes, tmp_path):
    with pytest.raises(ConfigError, match=r"^data.name: the flow_points_labelled trainer trains on labels "
                                          r"\(Trainer.takes_labels\) but dataset unlabelled_blobs has none; "):
        genframe.train("flow_points_labelled", overrides=[*TINY, "data.name=unlabelled_blobs"],
                       run_dir=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


class TestTimeConditionedContract(RecipeContract):
    """The conformance suite a plugin author runs, against the model(x, t) recipe."""

    recipe = "flow_points"
    overrides = ("trainer.batch_size=16", "logging.sample_n=8")
    sample_range = None  # points in the plane: no fixed range

    @pytest.fixture(autouse=True)
    def _registered(self):
        register(get_host().registry)


class TestClassConditionedContract(TestTimeConditionedContract):
    """... and against the model(x, t, y) recipe, whose trainer takes labels."""

    recipe = "flow_points_labelled"
