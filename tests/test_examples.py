"""The shipped example configs load and mean what they say."""

from __future__ import annotations

import warnings

import pytest
from conftest import REPO
from genframe_ebm.config import EBMConfig

import genframe
from genframe.config.sections import build_config


def test_reference_example_is_exactly_the_defaults():
    assert build_config(EBMConfig, path=REPO / "examples" / "ebm_mnist.toml") == EBMConfig(recipe="ebm")


def test_quick_example_is_the_fast_recipe_on_small_batches_within_five_minutes():
    quick = build_config(EBMConfig, path=REPO / "examples" / "ebm_mnist_quick.toml")
    fast = build_config(EBMConfig, path=REPO / "examples" / "ebm_mnist_fast.toml")
    assert quick.model == fast.model and quick.buffer == fast.buffer  # short-run chains from noise, no replay
    assert quick.sampler.generate_steps == quick.sampler.steps == 20 and quick.sampler.step_size == fast.sampler.step_size
    assert (quick.trainer.lr_min, quick.trainer.r1) == (fast.trainer.lr_min, fast.trainer.r1)
    # twice the rate, so a slow CPU's 1500 steps make digits, and a guard that acts within 2 steps on its spikes
    guard = quick.callbacks.table("divergence_guard")
    assert quick.trainer.lr == 2 * fast.trainer.lr and guard["patience"] == 2 and guard["limit"] == 1.0
    assert "settle_gate" in quick.callbacks.use and quick.trainer.checkpoint_every == 200
    assert quick.trainer.batch_size == 32 and quick.trainer.lr_decay_steps == "100%"  # the decay ends with the run
    # five minutes on any CPU: a length fitted to the machine, the hard stop beyond it
    assert quick.trainer.budget_minutes == 5.0 and quick.trainer.max_steps is None and quick.trainer.max_minutes > 5.0


def test_fashion_example_is_the_fast_recipe_with_longer_chains_and_its_own_length():
    fashion = genframe.recipe_config("ebm", REPO / "examples" / "ebm_fashion_fast.toml")
    fast = genframe.recipe_config("ebm", REPO / "examples" / "ebm_mnist_fast.toml")
    assert fashion.data.name == "fashion_mnist"
    assert fashion.sampler.generate_steps == fashion.sampler.steps == 50  # 30 collapsed late on Fashion-MNIST
    assert fashion.trainer.budget_minutes == 15.6 and fashion.trainer.max_steps is None  # 8450 steps on the Zen 4
    # Everything else is the MNIST fast recipe's: its network, its sampler's steps, its trainer, its mixture.
    assert fashion.model == fast.model and fashion.buffer == fast.buffer
    assert fashion.sampler.model_copy(update={"steps": 30, "generate_steps": 30}) == fast.sampler
    changed = {"budget_minutes"}  # the schedules are shares of the run: the same in both
    assert fashion.trainer.model_dump(exclude=changed) == fast.trainer.model_dump(exclude=changed)
    assert fashion.callbacks.use == fast.callbacks.use
    assert fashion.callbacks.table("snapshot_mixture")["members"] == fast.callbacks.table("snapshot_mixture")["members"]
    # The mixture spans the same share of the run (7 snapshots apart), evaluations come every fifth of it.
    assert fashion.callbacks.table("snapshot_mixture")["every"] == fast.callbacks.table("snapshot_mixture")["every"]
    assert fashion.callbacks.table("evaluation")["every_steps"] == "20%"


def test_fashion_example_trains_on_fashion_mnist_and_generates_as_it_trained(data_dir, tmp_path):
    if not (data_dir / "fashion-mnist").is_dir():
        pytest.skip(f"Fashion-MNIST not found under {data_dir}")
    small = ["trainer.batch_size=16", "trainer.max_steps=3", "callbacks.evaluation.every_steps=null",
             "logging.sample_every=3", "logging.sample_n=4", "logging.chain_n=0", "trainer.val_batch_size=2000"]
    result = genframe.train("ebm", REPO / "examples" / "ebm_fashion_fast.toml", small, run_dir=tmp_path / "run",
                            quiet=True)
    assert result.status == "completed" and result.step == 3
    loaded = genframe.load(tmp_path / "run")
    assert loaded.config.data.name == "fashion_mnist" and loaded.sampler.generate_steps == 50


@pytest.mark.parametrize("name", ["ebm_mnist.toml", "ebm_mnist_quick.toml", "ebm_mnist_fast.toml",
                                  "ebm_fashion_fast.toml"])
def test_every_example_is_written_with_todays_keys(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. a deprecated setting or module still used by an example
        config = genframe.recipe_config("ebm", REPO / "examples" / name)  # callbacks' settings checked too
    assert config.recipe == "ebm"


def test_flow_examples_fit_their_schedule_to_the_run_and_differ_only_in_the_data():
    mnist = genframe.recipe_config("flow", REPO / "examples" / "flow_mnist_fast.toml")
    fashion = genframe.recipe_config("flow", REPO / "examples" / "flow_fashion_fast.toml")
    assert (mnist.data.name, fashion.data.name) == ("mnist", "fashion_mnist")
    assert mnist.trainer.lr_decay_steps == "100%"  # the cosine ends with the run, however long
    assert mnist.trainer.budget_minutes == 15 and mnist.trainer.max_steps is None  # 3640 steps on the Zen 3
    assert mnist.trainer.warmup_steps < 40 * 3640 // 100 and mnist.sampler.method == "midpoint"
    assert mnist.model_dump(exclude={"data"}) == fashion.model_dump(exclude={"data"})


@pytest.mark.parametrize("name", ["flow_mnist_fast.toml", "flow_fashion_fast.toml"])
def test_every_flow_example_is_written_with_todays_keys(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert genframe.recipe_config("flow", REPO / "examples" / name).recipe == "flow"


@pytest.mark.parametrize(("name", "total", "steps"), [
    ("ebm_mnist_fast.toml", 27000, {"lr": 27000, "sample": 2700, "snapshot": 500, "evaluation": 2700}),
    ("ebm_fashion_fast.toml", 8450, {"lr": 8450, "sample": 1690, "snapshot": 156, "evaluation": 1690}),
    ("ebm_mnist_quick.toml", 1500, {"lr": 1500, "sample": 375})])
def test_schedules_written_as_shares_give_the_measured_recipes_steps(name, total, steps):
    # the recipes were measured with these steps (their budgets' length where they were made); as shares
    # their schedules follow whatever length a budget fixes on another machine
    config = genframe.recipe_config("ebm", REPO / "examples" / name)
    assert config.trainer.budget_minutes is not None and config.trainer.max_steps is None
    got = {"lr": genframe.steps_of(config.trainer.lr_decay_steps, total),
           "sample": genframe.steps_of(config.logging.sample_every, total)}
    if "snapshot" in steps:
        got["snapshot"] = genframe.steps_of(config.callbacks.table("snapshot_mixture")["every"], total)
        got["evaluation"] = genframe.steps_of(config.callbacks.table("evaluation")["every_steps"], total)
    assert got == steps
