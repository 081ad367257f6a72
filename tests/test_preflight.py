"""Checks before any work: the model against the data's examples and the memory a run would need,
each one line, with the model built on the meta device (no memory, no random draws)."""

from __future__ import annotations

import pytest
import torch

from genframe import preflight
from genframe.errors import ConfigError
from genframe.plugins import get_host


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
