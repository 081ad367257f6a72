"""The component registry: lookups, did-you-mean errors, conflicts between plugins."""

from __future__ import annotations

import pytest

from genframe.errors import PluginError, UnknownComponentError
from genframe.registry import KINDS, Registry


def test_unknown_name_lists_known_ones_and_suggests():
    registry = Registry()
    registry.add("recipe", "ebm", object())
    registry.add("recipe", "vae", object())
    with pytest.raises(UnknownComponentError) as err:
        registry.get("recipe", "emb")
    assert "unknown recipe 'emb'" in str(err.value)
    assert "Did you mean 'ebm'?" in str(err.value) and "Known recipes: ebm, vae" in str(err.value)


def test_two_plugins_cannot_claim_one_name():
    registry = Registry()
    registry.current_plugin = "a"
    registry.add("model", "net", object())
    registry.current_plugin = "b"
    with pytest.raises(PluginError, match="registered by both 'a' and 'b'"):
        registry.add("model", "net", object())
    with pytest.raises(PluginError, match="unknown kind 'modle'"):
        registry.add("modle", "net", object())


def test_the_kinds_are_the_ones_something_looks_up():
    assert KINDS == ("recipe", "dataset", "model", "logger", "callback")
    registry = Registry()
    registry.add("callback", "watch", object())
    assert registry.get("callback", "watch") is not None
    with pytest.raises(PluginError, match="unknown kind 'sampler'; kinds are: recipe, dataset, model, logger, callback"):
        registry.add("sampler", "sgld", object())  # samplers and trainers come from recipes, never looked up by name
