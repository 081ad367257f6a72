"""Plugin discovery through real entry points (temporary distributions on sys.path), failures, filters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import genframe
from genframe.contracts.errors import PluginError
from genframe.plugins.host import PluginWarning, load_plugins

GOOD = """
import genframe

class HelloLogger(genframe.Logger):
    def on_log(self, run, control, metrics, images):
        pass

@genframe.hookimpl
def genframe_register(registry):
    registry.add("logger", "hello", HelloLogger)
"""
BROKEN = "raise ImportError('the plugin needs a package that is not installed')\n"
TYPO = """
import genframe

@genframe.hookimpl
def genframe_regster(registry):
    pass
"""
RAISES_ON_REGISTER = """
import genframe

@genframe.hookimpl
def genframe_register(registry):
    raise RuntimeError('registration exploded')
"""


def make_distribution(site: Path, dist: str, entry_point: str, module: str, source: str, version="1.2.3") -> None:
    """A real installed distribution as pip would leave it: module + *.dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[genframe]\n{entry_point} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_hello", "hello", "gf_hello_plugin", GOOD)
    make_distribution(site, "genframe_broken", "broken", "gf_broken_plugin", BROKEN)
    make_distribution(site, "genframe_typo", "typo", "gf_typo_plugin", TYPO)
    make_distribution(site, "genframe_raises", "raises", "gf_raises_plugin", RAISES_ON_REGISTER)
    monkeypatch.syspath_prepend(str(site))
    for module in ("gf_hello_plugin", "gf_broken_plugin", "gf_typo_plugin", "gf_raises_plugin"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.delenv("GENFRAME_PLUGINS", raising=False)
    monkeypatch.delenv("GENFRAME_STRICT_PLUGINS", raising=False)
    return site


def test_entry_point_plugin_is_discovered_with_its_version_and_hooks(site):
    with pytest.warns(PluginWarning):
        host = load_plugins()
    info = {p.name: p for p in host.plugins}
    assert info["hello"].version == "1.2.3" and info["hello"].hooks == ["genframe_register"]
    assert info["hello"].distribution == "genframe_hello" and info["genframe"].distribution == "genframe"
    assert host.registry.entry("logger", "hello").plugin == "hello"
    assert "ebm" in info and host.registry.get("recipe", "ebm").name == "ebm"  # the real installed plugin


def test_broken_plugins_are_reported_by_name_and_do_not_stop_the_rest(site):
    with pytest.warns(PluginWarning) as caught:
        host = load_plugins()
    failures = {f.name: f.error for f in host.failures}
    assert "ImportError: the plugin needs a package" in failures["broken"]
    assert failures["typo"] == "unknown hook genframe_regster (did you mean genframe_register?)"
    assert "RuntimeError: registration exploded" in failures["raises"]
    assert {str(w.message).split("'")[1] for w in caught} == {"broken", "typo", "raises"}
    assert "typo" not in {p.name for p in host.plugins}
    assert host.registry.get("logger", "hello")  # unrelated plugins still work


def test_strict_mode_raises_on_the_first_broken_plugin(site, monkeypatch):
    monkeypatch.setenv("GENFRAME_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="plugin 'broken' failed to load: ImportError"):
        load_plugins()


def test_environment_restricts_which_plugins_load(site, monkeypatch):
    monkeypatch.setenv("GENFRAME_PLUGINS", "hello")
    host = load_plugins()  # no warnings: the broken ones are never imported
    assert {p.name for p in host.plugins} == {"genframe", "hello"}
    assert host.failures == [] and "gf_broken_plugin" not in sys.modules
    monkeypatch.delenv("GENFRAME_PLUGINS")
    monkeypatch.setenv("GENFRAME_DISABLE_PLUGINS", "broken,typo,raises,hello")
    host = load_plugins()
    loaded = {p.name for p in host.plugins}  # whatever else the environment has installed may load too
    assert {"genframe", "ebm"} <= loaded and not loaded & {"broken", "typo", "raises", "hello"}


def test_core_never_imports_a_plugin():
    core = Path(genframe.__file__).parent
    offenders = [str(p) for p in core.rglob("*.py") if "genframe_ebm" in p.read_text()]
    assert offenders == []


def test_cli_plugins_lists_versions_hooks_and_failures(site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "genframe", "plugins"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "hello 1.2.3 (entry point gf_hello_plugin)  hooks: genframe_register" in out.stdout
    assert "ebm 0.2.0" in out.stdout and "logger:   console" in out.stdout
    assert "Failed to load:" in out.stdout and "broken: ImportError" in out.stdout
    assert "warning: genframe: plugin 'broken' failed to load" in out.stderr
    assert "Traceback" not in out.stderr
    # an unrelated command still works with broken plugins installed
    shown = subprocess.run([sys.executable, "-m", "genframe", "config", "show", "ebm"], env=env,
                           capture_output=True, text=True)
    assert shown.returncode == 0 and "step_size = 10.0" in shown.stdout
