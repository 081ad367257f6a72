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


def test_quick_example_is_the_reference_recipe_stopped_early():
    quick = build_config(EBMConfig, path=REPO / "examples" / "ebm_mnist_quick.toml")
    assert quick.trainer.max_steps == 400
    reference = EBMConfig(recipe="ebm")
    assert quick.sampler == reference.sampler and quick.buffer == reference.buffer and quick.model == reference.model
    assert quick.trainer.lr == reference.trainer.lr and quick.trainer.batch_size == reference.trainer.batch_size


@pytest.mark.parametrize("name", ["ebm_mnist.toml", "ebm_mnist_quick.toml", "ebm_mnist_fast.toml"])
def test_every_example_is_written_with_todays_keys(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConfigMovedWarning: an example still written with old keys
        config = genframe.recipe_config("ebm", REPO / "examples" / name)  # callbacks' settings checked too
    assert config.recipe == "ebm"
