"""The shipped example configs load and mean what they say."""

from __future__ import annotations

import warnings

import pytest

import genframe
from genframe.config import build_config
from genframe_ebm.config import EBMConfig

from conftest import REPO


def test_reference_example_is_exactly_the_defaults():
    assert build_config(EBMConfig, path=REPO / "examples" / "ebm_mnist.toml") == EBMConfig(recipe="ebm")


def test_quick_example_is_the_fast_recipe_on_small_batches_within_five_minutes():
    quick = build_config(EBMConfig, path=REPO / "examples" / "ebm_mnist_quick.toml")
    fast = build_config(EBMConfig, path=REPO / "examples" / "ebm_mnist_fast.toml")
    assert quick.model == fast.model and quick.buffer == fast.buffer  # short-run chains from noise, no replay
    assert quick.sampler.generate_steps == quick.sampler.steps == 20 and quick.sampler.step_size == fast.sampler.step_size
    assert (quick.trainer.lr, quick.trainer.lr_min, quick.trainer.r1) == (fast.trainer.lr, fast.trainer.lr_min, fast.trainer.r1)
    assert quick.trainer.batch_size == 32 and quick.trainer.max_minutes == 5.0
    assert quick.trainer.lr_decay_steps == quick.trainer.max_steps == 1500  # the decay ends with the run


@pytest.mark.parametrize("name", ["ebm_mnist.toml", "ebm_mnist_quick.toml", "ebm_mnist_fast.toml"])
def test_every_example_is_written_with_todays_keys(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConfigMovedWarning: an example still written with old keys
        config = genframe.recipe_config("ebm", REPO / "examples" / name)  # callbacks' settings checked too
    assert config.recipe == "ebm"
