"""The component registry: lookups, did-you-mean errors, names two plugins offer, all-or-nothing registration."""

from __future__ import annotations

import pytest

from genframe.contracts.errors import PluginError, UnknownComponentError
from genframe.plugins.registry import KINDS, AmbiguousComponentError, Choices, Registry


def test_unknown_name_lists_known_ones_and_suggests():
    registry = Registry()
    registry.add("recipe", "ebm", object())
    registry.add("recipe", "vae", object())
    with pytest.raises(UnknownComponentError) as err:
        registry.get("recipe", "emb")
    assert "unknown recipe 'emb'" in str(err.value)
    assert "Did you mean 'ebm'?" in str(err.value) and "Known recipes: ebm, vae" in str(err.value)


def test_two_plugins_offering_one_name_both_load_and_the_bare_name_asks_which():
    registry = Registry()
    with registry.registering("a"):
        registry.add("model", "net", "collections:OrderedDict")
    with registry.registering("b"):
        registry.add("model", "net", "collections:Counter")
    with pytest.raises(AmbiguousComponentError, match=r"^model 'net' is offered by 2 plugins \(a, b\); name the one you "
                                                      r"mean: a:net, b:net$"):
        registry.get("model", "net")
    import collections

    assert registry.get("model", "a:net") is collections.OrderedDict
    assert registry.get("model", "b:net") is collections.Counter
    assert registry.names("model") == ["net"] and registry.ambiguous("model") == {"net": ["a:net", "b:net"]}
    with pytest.raises(UnknownComponentError, match=r"unknown model 'c:net': no such plugin offers it. Known: a:net, b:net"):
        registry.get("model", "c:net")
    with pytest.raises(PluginError, match="unknown kind 'modle'"):
        registry.add("modle", "net", object())
    with pytest.raises(PluginError, match="registered model 'a:net'; a name is a non-empty string without ':'"):
        registry.add("model", "a:net", object())


def test_a_resumed_run_resolves_a_bare_name_as_it_recorded():
    registry = Registry()
    with registry.registering("a"):
        registry.add("dataset", "ring", "collections:OrderedDict")
    with Registry.choosing(Choices()) as fresh:
        registry.get("dataset", "ring")
    assert fresh.used == {"dataset:ring": "a"}  # what the run writes into its checkpoints
    with registry.registering("b"):  # installed later: the bare name is now ambiguous
        registry.add("dataset", "ring", "collections:Counter")
    with pytest.raises(AmbiguousComponentError):
        registry.get("dataset", "ring")
    import collections

    with Registry.choosing(Choices(fresh.used)):
        assert registry.get("dataset", "ring") is collections.OrderedDict


def test_a_plugin_registers_whole_or_not_at_all():
    registry = Registry()
    with pytest.raises(RuntimeError), registry.registering("half"):
        registry.add("model", "first", object())
        raise RuntimeError("halfway")
    assert registry.names("model") == []
    with pytest.raises(PluginError, match="registered model 'net' twice"), registry.registering("twice"):
        registry.add("model", "net", object())
        registry.add("model", "net", object())
    assert registry.names("model") == []


def test_the_kinds_are_the_ones_something_looks_up():
    assert KINDS == ("recipe", "dataset", "model", "logger", "callback")
    registry = Registry()
    registry.add("callback", "watch", object())
    assert registry.get("callback", "watch") is not None
    with pytest.raises(PluginError, match=r"unknown kind 'sampler'; since genframe 0.2 a recipe builds its sampler \("
                                          r"Recipe.build_sampler\): register the recipe only"):
        registry.add("sampler", "sgld", object())  # samplers and trainers come from recipes, never looked up by name


def test_a_reference_is_imported_on_first_use_and_a_bad_one_is_named():
    registry = Registry()
    registry.current_plugin = "mine"
    registry.add("model", "ordered", "collections:OrderedDict")
    registry.add("model", "ordered", "collections:OrderedDict")  # the same reference again is no conflict
    import collections

    assert registry.get("model", "ordered") is collections.OrderedDict
    with pytest.raises(PluginError, match="registered model 'net' as 'my_models.Net'; a reference names a module "
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
    assert {entry.plugin for entry in lazy} >= {"genframe", "ebm"}
    for entry in lazy:
        name = getattr(entry.obj, "name", entry.name)  # classes that carry a name must carry the registered one
        assert name == entry.name, (entry, name)
