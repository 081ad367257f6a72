"""Checks before any work: the model against the data's examples and the memory a run would need,
each one line, with the model built on the meta device (no memory, no random draws)."""

from __future__ import annotations

import pytest
import torch

import genframe
from genframe.contracts.errors import ConfigError
from genframe.plugins.host import get_host
from genframe.training import preflight


class FlatRecipe:
    """A recipe whose model takes 10 numbers: it cannot take images, and only the forward pass tells."""

    name = "flat"

    def build_model(self, config):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1))

    def check_data(self, config, example_shape, dataset):
        pass

    def memory_needs(self, config, example_shape):
        return {"cache (cache.size=3)": 3 * 2**30}


def test_a_model_that_cannot_take_the_examples_is_one_line_before_any_work():
    with pytest.raises(ConfigError, match=r"model: the flat model does not take dataset mnist's examples of shape "
                                          r"\(1, 32, 32\) \(RuntimeError: .*\); change the model settings"):
        preflight.check_model_fits_data(FlatRecipe(), None, (1, 32, 32), "mnist")
    preflight.check_model_fits_data(FlatRecipe(), None, (10,), "vectors")  # fits: no error


def test_the_meta_model_draws_nothing_from_the_random_streams():
    before = torch.get_rng_state()
    ebm = get_host().entry("recipe", "ebm").obj
    model = preflight.meta_model(ebm, ebm.config_class())
    assert torch.equal(before, torch.get_rng_state())
    assert all(p.device.type == "meta" for p in model.parameters())


def test_memory_beyond_what_is_available_names_the_largest_part(monkeypatch):
    monkeypatch.setattr(preflight, "available_memory", lambda device: 2 * 2**30)
    with pytest.raises(ConfigError, match=r"need about 3\.0 GiB of memory \(cache \(cache\.size=3\): 3\.0 GiB, model "
                                          r"weights.*\) but 2\.0 GiB is available"):
        preflight.check_memory(FlatRecipe(), None, (10,), torch.device("cpu"))
    monkeypatch.setattr(preflight, "available_memory", lambda device: 4 * 2**30)
    preflight.check_memory(FlatRecipe(), None, (10,), torch.device("cpu"))


def test_available_memory_is_read_from_the_machine():
    free = preflight.available_memory(torch.device("cpu"))
    assert free is None or 2**26 < free < 2**50


class ValueReadingRecipe(FlatRecipe):
    """Valid models that meta cannot run: ``forward_reads`` branches on a value in its forward pass,
    ``build_reads`` reads a value while it is built (both "cannot be called on meta tensors")."""

    name = "reader"

    def __init__(self, where: str, features: int = 1024) -> None:
        self.where, self.features = where, features

    def build_model(self, config):
        recipe = self

        class Reader(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.linear = torch.nn.Linear(recipe.features, 1)
                if recipe.where == "build":
                    self.scale = float(self.linear.weight.abs().max().item())  # a value, at build time

            def forward(self, x):
                x = x.flatten(1)
                if recipe.where == "forward" and x.abs().max() > 1:  # data-dependent control flow
                    x = x / x.abs().max()
                return self.linear(x)

        return Reader()


@pytest.mark.parametrize("where", ["forward", "build"])
def test_a_model_that_reads_values_passes_on_the_cpu_without_touching_the_random_streams(where):
    before = torch.get_rng_state()
    preflight.check_model_fits_data(ValueReadingRecipe(where), None, (1, 32, 32), "mnist")  # no error
    assert torch.equal(before, torch.get_rng_state())
    preflight.check_memory(ValueReadingRecipe(where), None, (1, 32, 32), torch.device("cpu"))  # no traceback


@pytest.mark.parametrize("where", ["forward", "build"])
def test_a_model_that_reads_values_and_does_not_take_the_examples_is_still_one_line(where):
    with pytest.raises(ConfigError, match=r"the reader model does not take dataset mnist's examples of shape "
                                          r"\(1, 32, 32\) \(RuntimeError: .*shapes cannot be multiplied"):
        preflight.check_model_fits_data(ValueReadingRecipe(where, features=10), None, (1, 32, 32), "mnist")


def test_a_model_that_cannot_be_built_even_on_the_cpu_is_left_to_the_run():
    class Unbuildable(FlatRecipe):
        def build_model(self, config):
            raise OSError("weights.bin: no such file")  # the run's own build says so, in its own words

    preflight.check_model_fits_data(Unbuildable(), None, (1, 32, 32), "mnist")  # skipped, no error


def test_a_batch_larger_than_the_data_is_one_line_before_any_work():
    config = get_host().entry("recipe", "ebm").obj.config_class()
    config.trainer.batch_size = 100_000_000
    with pytest.raises(ConfigError, match=r"^trainer.batch_size: 100000000 is larger than the training data "
                                          r"\(60000 examples\)$"):
        preflight.check_batch(config, 60000, 1)
    config.trainer.batch_size = 40000
    with pytest.raises(ConfigError, match=r"\(60000 examples, shared by 2 processes\)"):
        preflight.check_batch(config, 60000, 2)
    preflight.check_batch(config, 60000, 1)  # fits


def test_the_core_counts_every_batch_of_chains_in_flight_by_its_setting_from_the_recipes_bytes_per_example():
    ebm = get_host().entry("recipe", "ebm").obj
    config = ebm.config_class()
    needs = preflight.memory_needs(ebm, config, (1, 32, 32))
    assert set(ebm.memory_needs(config, (1, 32, 32))) == {"replay buffer (buffer.size=8192)"}  # the recipe's own
    assert {"training batch (trainer.batch_size=128)", "preview samples (logging.sample_n=64)",
            "final GIF chains (logging.chain_n=16)"} <= set(needs)
    assert not any(name.startswith("evaluation") for name in needs)  # not scheduled: it samples nothing
    config.callbacks.model_extra["evaluation"] = {"every_epochs": 1, "n": 100_000}
    chunk = preflight.memory_needs(ebm, config, (1, 32, 32))["evaluation chains (callbacks.evaluation.n=100000, 500 at a time)"]
    assert chunk == 500 / 64 * needs["preview samples (logging.sample_n=64)"]  # one chunk of chains, not n
    config.trainer.batch_size = 60000  # the whole of MNIST: gigabytes of activations, not a replay buffer's worth
    assert 4 * 2**30 < preflight.memory_needs(ebm, config, (1, 32, 32))["training batch (trainer.batch_size=60000)"] < 32 * 2**30


def test_the_ebm_net_follows_the_datas_shape_unless_set():
    recipe = genframe.get_recipe("ebm")
    fitted = recipe.fit_to_data(genframe.recipe_config("ebm", None, []), (3, 64, 64))
    assert (fitted.model.in_channels, fitted.model.image_size) == (3, 64)
    recipe.check_data(fitted, (3, 64, 64), "colour")  # fits: no error
    chosen = recipe.fit_to_data(genframe.recipe_config("ebm", None, ["model.in_channels=1"]), (3, 64, 64))
    assert (chosen.model.in_channels, chosen.model.image_size) == (1, 64)  # the user's setting stands...
    with pytest.raises(ConfigError, match="set model.in_channels=3"):  # ...and is checked against the data
        recipe.check_data(chosen, (3, 64, 64), "colour")
