"""A fault stays with its plugin: whatever goes wrong while a plugin registers (a kind genframe no longer has,
one name twice, an exception halfway), that plugin is skipped whole and listed with the fix, and every other
command and family works; strict mode fails fast. Two plugins offering one name both load: the bare name is
refused in one line listing the qualified names, ``PLUGIN:NAME`` works, and a run resumes with the plugin it
recorded after a later plugin made its bare name ambiguous.

The plugins are real installed distributions (``*.dist-info`` with entry points on sys.path).
"""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner
from test_plugins import make_distribution

import genframe
from genframe.cli.main import cli
from genframe.plugins.host import get_host
from genframe.training.checkpoint import load_checkpoint

RETIRED_KIND = """
import genframe

@genframe.hookimpl
def genframe_register(registry):
    registry.add("sampler", "ring_euler", object)  # a kind of genframe 0.1
"""
HALFWAY = """
import genframe

@genframe.hookimpl
def genframe_register(registry):
    registry.add("dataset", "halfway_digits", "genframe.data.mnist:MNIST")
    raise RuntimeError("the second component's module is missing")
"""
TWICE = """
import genframe

@genframe.hookimpl
def genframe_register(registry):
    registry.add("dataset", "twice", "genframe.data.mnist:MNIST")
    registry.add("dataset", "twice", "genframe.data.mnist:FashionMNIST")
"""
# Two plugins offer the dataset "digits" (both MNIST underneath, so a run trains on either).
OFFERS_DIGITS = """
import genframe

@genframe.hookimpl
def genframe_register(registry):
    registry.add("dataset", "digits", "genframe.data.mnist:MNIST")
"""
# A later plugin offering "digits" of its own (another class) and a recipe "ebm" of its own.
OFFERS_DIGITS_AND_EBM = """
import genframe
from genframe.data.mnist import MNIST
from genframe_ebm.recipe import EBMRecipe


class Digits(MNIST):
    pass


@genframe.hookimpl
def genframe_register(registry):
    registry.add("dataset", "digits", Digits)
    registry.add("recipe", "ebm", EBMRecipe(registry))
"""
TINY = ["trainer.device=cpu", "trainer.max_steps=2", "trainer.batch_size=16", "data.limit=64", "sampler.steps=2",
        "sampler.generate_steps=2", "buffer.size=32", "logging.sample_n=0", "logging.chain_n=0", "logging.log_every=1",
        'logging.loggers=["jsonl"]']


def sets(settings):
    return [arg for item in settings for arg in ("--set", item)]


@pytest.fixture
def install(tmp_path, monkeypatch):
    """install(entry_point, source): a distribution genframe-ENTRY_POINT offering it, on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    for var in ("GENFRAME_PLUGINS", "GENFRAME_STRICT_PLUGINS", "GENFRAME_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)

    def install(entry_point: str, source: str) -> None:
        module = f"gf_{entry_point}_plugin"
        make_distribution(site, f"genframe_{entry_point}", entry_point, module, source)
        monkeypatch.delitem(sys.modules, module, raising=False)
        monkeypatch.syspath_prepend(str(site))  # invalidates the import caches
        genframe.reset_host()

    return install


def invoke(*args: str):
    genframe.reset_host()
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize(("name", "source", "reason"), [
    ("oldkind", RETIRED_KIND, "registered unknown kind 'sampler'; since genframe 0.2 a recipe builds its sampler "
                              "(Recipe.build_sampler): register the recipe only"),
    ("halfway", HALFWAY, "RuntimeError: the second component's module is missing (at "),
    ("twice", TWICE, "registered dataset 'twice' twice, as two different components; give one of them another name"),
])
def test_a_plugin_that_fails_to_register_is_skipped_whole_and_every_command_works(install, name, source, reason):
    install(name, source)
    listing = invoke("plugins")
    assert listing.exit_code == 0, listing.output
    failed = listing.output.split("Failed to load:")[1]
    assert f"  {name}: " in failed and reason in failed
    assert f"GENFRAME_DISABLE_PLUGINS={name} (or pip uninstall genframe_{name})" in failed  # the fix, how to disable
    assert f"[{name}]" not in listing.output.split("Failed to load:")[0]  # none of its components, first ones included
    shown = invoke("config", "show", "ebm")  # another family's command
    assert shown.exit_code == 0 and "[sampler]" in shown.output
    host = get_host()
    assert "halfway_digits" not in host.registry.names("dataset") and "twice" not in host.registry.names("dataset")
    assert host.registry.get("dataset", "mnist") is not None


def test_strict_mode_fails_fast_on_a_registration_fault(install, monkeypatch):
    install("oldkind", RETIRED_KIND)
    monkeypatch.setenv("GENFRAME_STRICT_PLUGINS", "1")
    result = invoke("plugins")
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1].startswith("Error: plugin 'oldkind' failed to load: it registered "
                                                            "unknown kind 'sampler'")


def test_a_name_two_plugins_offer_is_picked_by_its_qualified_name_and_a_run_resumes_with_its_own(
        install, tmp_path, data_dir):
    install("first", OFFERS_DIGITS)
    run = tmp_path / "run"
    trained = invoke("run", "ebm", "--run-dir", str(run), "--quiet", *sets([*TINY, "data.name=digits"]))
    assert trained.exit_code == 0, trained.output
    assert load_checkpoint(run)["components"]["dataset:digits"] == "first"

    install("same", OFFERS_DIGITS)  # the very same component under the same name: no choice to make
    assert invoke("plugins").output.count("digits [") == 1

    install("second", OFFERS_DIGITS_AND_EBM)  # a later plugin offers "digits" and "ebm" too
    fresh = invoke("run", "ebm", "--run-dir", str(tmp_path / "fresh"), "--quiet", *sets([*TINY, "data.name=digits"]))
    assert fresh.exit_code != 0
    assert fresh.output.strip().splitlines()[-1] == ("Error: recipe 'ebm' is offered by 2 plugins (ebm, second); "
                                                     "name the one you mean: ebm:ebm, second:ebm")
    fresh = invoke("run", "ebm:ebm", "--run-dir", str(tmp_path / "fresh"), "--quiet",
                   *sets([*TINY, "data.name=digits"]))
    assert fresh.output.strip().splitlines()[-1] == ("Error: dataset 'digits' is offered by 2 plugins (first, second); "
                                                     "name the one you mean: first:digits, second:digits")
    assert not (tmp_path / "fresh").exists()
    picked = invoke("run", "ebm:ebm", "--run-dir", str(tmp_path / "picked"), "--quiet",
                    *sets([*TINY, "data.name=second:digits"]))
    assert picked.exit_code == 0, picked.output
    assert load_checkpoint(tmp_path / "picked")["components"]["dataset:digits"] == "second"

    # the first run, made before either name was ambiguous, goes on with its own plugins' components
    resumed = invoke("run", "ebm", "--resume", str(run), "--quiet", "--set", "trainer.max_steps=4")
    assert resumed.exit_code == 0, resumed.output
    state = load_checkpoint(run)
    assert state["loop"]["step"] == 4 and state["components"]["dataset:digits"] == "first"
    assert state["components"]["recipe:ebm"] == "ebm"
    switched = invoke("run", "second:ebm", "--resume", str(run), "--quiet", "--set", "trainer.max_steps=6")
    assert switched.exit_code != 0 and "was made by plugin 'ebm''s recipe 'ebm', not plugin 'second''s" in switched.output
    sampled = invoke("sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png"))
    assert sampled.exit_code == 0, sampled.output
    scored = invoke("score", str(run), "digits:test", "--n", "8", "--out", str(tmp_path / "s.csv"))
    assert scored.exit_code == 0, scored.output
    exported = invoke("export", str(run), "--out", str(tmp_path / "shared"), "--grid-n", "4")
    assert exported.exit_code == 0, exported.output
    assert genframe.load(tmp_path / "shared").sample(2).images.shape[0] == 2
    listing = invoke("plugins")
    assert "digits [first], digits [second]" in listing.output
    assert "dataset 'digits' is offered by 2 plugins: name it first:digits or second:digits" in listing.output


def test_an_entry_point_named_like_the_core_is_skipped_with_the_fix(install):
    install("genframe", OFFERS_DIGITS)
    listing = invoke("plugins")
    assert listing.exit_code == 0
    assert ("  genframe: package genframe_genframe names its entry point 'genframe', the name genframe's own "
            "components go by\n      fix: rename the entry point in genframe_genframe's pyproject.toml") in listing.output
    assert "digits" not in listing.output.split("Failed to load:")[0]
    assert "[genframe]" in listing.output  # the core's own components are untouched


def test_a_qualified_core_callback_is_the_same_callback_and_is_refused_twice():
    config = genframe.recipe_config("ebm", overrides=['callbacks.use=["genframe:ema"]'])
    assert config.callbacks.use == ["genframe:ema"] and config.callbacks.table("genframe:ema")["decay"] > 0
    with pytest.raises(genframe.ConfigError, match=r"^invalid config: callbacks.use: 'genframe:evaluation' is the "
                                                   r"callback 'evaluation' again, which is on already"):
        genframe.recipe_config("ebm", overrides=['callbacks.use=["genframe:evaluation"]'])
