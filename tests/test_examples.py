"""The shipped example configs load and mean what they say."""

from __future__ import annotations

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
