"""The component registry: lookups, did-you-mean errors, conflicts between plugins."""

from __future__ import annotations

import pytest

from genframe.contracts.errors import PluginError, UnknownComponentError
from genframe.plugins.registry import KINDS, Registry


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


def test_a_reference_is_imported_on_first_use_and_a_bad_one_is_named():
    registry = Registry()
    registry.current_plugin = "mine"
    registry.add("model", "ordered", "collections:OrderedDict")
    registry.add("model", "ordered", "collections:OrderedDict")  # the same reference again is no conflict
    import collections

    assert registry.get("model", "ordered") is collections.OrderedDict
    with pytest.raises(ValueError, match="registered model 'net' as 'my_models.Net'; a reference names a module "
                                          "and an attribute, e.g. 'my_package.models:MyModel'"):
        registry.add("model", "net", "my_models.Net")
    registry.add("model", "missing", "genframe_no_such_module:Net")
    registry.add("model", "typo", "collections:OrderedDcit")
    with pytest.raises(PluginError, match="model 'missing' of plugin 'mine' is registered as "
                                          "'genframe_no_such_module:Net', which could not be imported: .*No module"):
        registry.get("model", "missing")
    with pytest.raises(PluginError, match="'collections:OrderedDcit', which could not be imported: .*OrderedDcit"):
        registry.get("model", "typo")
    assert [entry.name for entry in registry.entries()] == ["ordered", "missing", "typo"]  # listing imports nothing


def test_every_shipped_reference_resolves_to_a_component_of_its_registered_name():
    from genframe.plugins.host import load_plugins

    host = load_plugins(strict=True)
    lazy = [entry for entry in host.registry.entries() if entry.reference]
    assert {entry.plugin for entry in lazy} >= {"genframe.plugins.builtins", "ebm"}
    for entry in lazy:
        name = getattr(entry.obj, "name", entry.name)  # classes that carry a name must carry the registered one
        assert name == entry.name, (entry, name)
