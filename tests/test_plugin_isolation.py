"""A plugin cannot break a run: a logger that raises is reported once (package, point or hook, error,
file:line) and switched off while everything else goes on; load failures say where and what was meant.

Plugins are real installed distributions (a *.dist-info with entry points on sys.path), as a user's
would be; their package names differ from their entry-point names so the reports must use the right one.
"""

from __future__ import annotations

import json
import sys
import textwrap
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from test_plugins import make_distribution

import genframe
from genframe.cli.main import cli
from genframe.contracts.errors import PluginError
from genframe.contracts.hookspecs import hookimpl
from genframe.plugins.faults import HOOK_NAMES
from genframe.loggers.attach import open_loggers
from genframe.plugins.host import PluginHost, PluginWarning, load_plugins
from genframe.training.listeners import Listeners

BOOM = """
import json
import genframe

class Boom:
    def __init__(self, run):
        self.run = run

    @genframe.hookimpl
    def genframe_log(self, run, step, metrics, images):
        json.loads("{not json")  # fails inside the json module; the report must point here

class Tally:
    def __init__(self, run):
        self.run = run

    @genframe.hookimpl
    def genframe_log(self, run, step, metrics, images):
        run.seen.append(step)

@genframe.hookimpl
def genframe_register(registry):
    registry.add("logger", "boom", Boom)
    registry.add("logger", "tally", Tally)
"""
IMPORT_FAILS = """
import os
import genframe_no_such_dependency
"""
MISSPELLED = """
import genframe

@genframe.hookimpl
def genframe_logg(run, step, metrics, images):
    pass
"""
UNKNOWN = """
import genframe

@genframe.hookimpl
def genframe_frobnicate(run):
    pass
"""
WRONG_ARGUMENT = """
import genframe

@genframe.hookimpl
def genframe_log(run, step, metric, images):
    pass
"""
TRAIN = ["trainer.device=cpu", "trainer.max_steps=4", "trainer.batch_size=16", "data.limit=64", "sampler.steps=3",
         "sampler.generate_steps=3", "buffer.size=32", "logging.sample_n=4", "logging.chain_n=0",
         'logging.loggers=["jsonl","boom"]', "logging.log_every=2"]


def line_of(source: str, text: str) -> int:
    """The line of ``text`` in the module file ``make_distribution`` writes from ``source``."""
    return next(n for n, line in enumerate(textwrap.dedent(source).splitlines(), 1) if text in line)


def load_failing(monkeypatch, names: str):
    """Load only the plugins ``names`` (GENFRAME_PLUGINS), which are expected to fail: (host, warnings)."""
    monkeypatch.setenv("GENFRAME_PLUGINS", names)
    with pytest.warns(PluginWarning) as caught:
        host = load_plugins()
    return host, caught


@pytest.fixture
def install(tmp_path, monkeypatch):
    """Install fake third-party plugins: install(dist, entry_point, module, source), then on sys.path."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.delenv("GENFRAME_PLUGINS", raising=False)
    monkeypatch.delenv("GENFRAME_STRICT_PLUGINS", raising=False)

    def install(dist: str, entry_point: str, module: str, source: str):
        make_distribution(site, dist, entry_point, module, source)
        monkeypatch.delitem(sys.modules, module, raising=False)
        monkeypatch.syspath_prepend(str(site))  # also invalidates the import caches
        return site

    return install


def plugin_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def heard(host, names, run, calls, point="on_log", args=lambda step: ({"loss": 1.0}, {})):
    """Open ``names``' loggers for ``run`` and call ``point`` at each of ``calls`` steps, as a run does."""
    listeners = Listeners([], run, open_loggers(host, names, run))
    for step in calls:
        run.step = step
        listeners.call(point, run, *args(step))
    return listeners


def test_a_raising_logger_is_switched_off_once_and_the_others_go_on(install, monkeypatch):
    site = install("genframe_boom_tools", "boom", "gf_boom_plugin", BOOM)
    monkeypatch.setenv("GENFRAME_PLUGINS", "boom")
    host = load_plugins()
    run = SimpleNamespace(seen=[], step=0)
    with pytest.warns(PluginWarning) as caught:
        listeners = heard(host, ["boom", "tally"], run, (1, 2, 3))  # boom first: it fails before tally hears
    assert run.seen == [1, 2, 3]  # including the call in which boom raised
    (message,) = plugin_warnings(caught)
    where = f"{site / 'gf_boom_plugin.py'}:{line_of(BOOM, 'json.loads')}"
    assert message.startswith("genframe: logger 'boom' from genframe_boom_tools raised in genframe_log: "
                              "JSONDecodeError: Expecting property name")
    assert f"(at {where})" in message and "\n" not in message  # the plugin's line, not json's
    assert [w.label for w in listeners.loggers] == ["logger 'tally'"]  # for the rest of this run
    deprecations = [str(w.message) for w in caught if issubclass(w.category, genframe.GenframeDeprecationWarning)]
    assert len(deprecations) == 2 and all("genframe.Logger" in text and "on_log(run, control, metrics, images)"
                                          in text and "goes in 0.4" in text for text in deprecations)


def test_strict_mode_makes_a_raising_logger_a_one_line_plugin_error(install, monkeypatch):
    site = install("genframe_boom_tools", "boom", "gf_boom_plugin", BOOM)
    monkeypatch.setenv("GENFRAME_PLUGINS", "boom")
    monkeypatch.setenv("GENFRAME_STRICT_PLUGINS", "1")
    host = load_plugins()
    with pytest.raises(PluginError) as raised, pytest.warns(genframe.GenframeDeprecationWarning):
        heard(host, ["boom"], SimpleNamespace(seen=[], step=0), (1,))
    message = str(raised.value)
    assert message.startswith("logger 'boom' from genframe_boom_tools raised in genframe_log: JSONDecodeError")
    assert message.endswith(f"(at {site / 'gf_boom_plugin.py'}:{line_of(BOOM, 'json.loads')})")
    assert "\n" not in message


class Listener:
    """Records its calls of genframe_run_end into ``calls``; ``order`` picks tryfirst/trylast."""

    def __init__(self, name, calls, order=None, fail=False):
        def genframe_run_end(run, status):
            calls.append(name)
            if fail:
                raise RuntimeError(f"{name} broke")

        self.genframe_run_end = hookimpl(**({order: True} if order else {}))(genframe_run_end)


class Wrapper:
    def __init__(self, calls):
        self.calls = calls

    @hookimpl(wrapper=True)
    def genframe_run_end(self, run, status):
        self.calls.append("wrapper before")
        yield
        self.calls.append("wrapper after")


def test_plugins_on_the_old_hooks_are_heard_in_pluggys_order_each_failure_its_own_and_next_run_again():
    host, calls = PluginHost(strict=False), []
    for plugin, name in [(Listener("a", calls), "a"), (Listener("first", calls, "tryfirst"), "first"),
                         (Listener("last", calls, "trylast"), "last"), (Wrapper(calls), "wrapper"),
                         (Listener("b", calls), "b")]:
        host.pm.register(plugin, name=name)
    run = SimpleNamespace(step=0)
    end = {"point": "on_run_end", "args": lambda step: ("completed",)}
    with pytest.warns(genframe.GenframeDeprecationWarning, match="plugin 'a' implements the genframe_\\* lifecycle"):
        heard(host, [], run, (1,), **end)
    # pluggy's order (wrappers, tryfirst, the latest registered first, trylast); a wrapper wraps its own plugin
    assert calls == ["wrapper before", "wrapper after", "first", "b", "a", "last"]

    flaky = Listener("flaky", calls, fail=True)
    host.pm.register(flaky, name="flaky")
    calls.clear()
    with pytest.warns(PluginWarning, match=r"plugin 'flaky' from flaky raised in genframe_run_end: "
                                           r"RuntimeError: flaky broke \(at .*test_plugin_isolation.py:\d+\)"):
        heard(host, [], run, (1, 2), **end)  # switched off after its failure: no second warning
    assert calls.count("flaky") == 1 and calls.count("a") == 2
    calls.clear()
    with pytest.warns(PluginWarning):
        heard(host, [], run, (1,), **end)  # the next run tries it again
    assert calls.count("flaky") == 1


def test_a_plugin_failing_on_import_says_where_and_keeps_its_traceback(install, monkeypatch):
    site = install("genframe_needs_more", "needy", "gf_needy_plugin", IMPORT_FAILS)
    host, caught = load_failing(monkeypatch, "needy")
    (failure,) = host.failures
    where = f"{site / 'gf_needy_plugin.py'}:{line_of(IMPORT_FAILS, 'import genframe_no_such')}"
    assert failure.error == f"ModuleNotFoundError: No module named 'genframe_no_such_dependency' (at {where})"
    assert failure.distribution == "genframe_needs_more"
    (message,) = plugin_warnings(caught)
    assert f"plugin 'needy' failed to load: {failure.error} (package genframe_needs_more)" in message
    assert failure.traceback.startswith("Traceback (most recent call last):")
    assert f'gf_needy_plugin.py", line {line_of(IMPORT_FAILS, "import genframe_no_such")}' in failure.traceback

    def plugins_command(*options):
        genframe.reset_host()
        with pytest.warns(PluginWarning):
            return CliRunner().invoke(cli, ["plugins", *options])

    plain = plugins_command()
    assert plain.exit_code == 0 and f"needy: {failure.error}" in plain.output and "Traceback" not in plain.output
    full = plugins_command("--traceback")
    assert full.exit_code == 0 and "      Traceback (most recent call last):" in full.output
    assert 'gf_needy_plugin.py", line 3' in full.output
    listed = plugins_command("--json")
    (failed,) = json.loads(listed.stdout)["failed"]
    assert failed["traceback"] == failure.traceback and failed["distribution"] == "genframe_needs_more"


def test_a_misspelled_hook_is_named_alone_with_a_did_you_mean(install, monkeypatch):
    install("genframe_typo_pkg", "a_typo", "gf_typo_plugin", MISSPELLED)
    install("genframe_odd_pkg", "b_odd", "gf_odd_plugin", UNKNOWN)  # loads after a_typo registered its typo
    host, _ = load_failing(monkeypatch, "a_typo,b_odd")
    failures = {f.name: f.error for f in host.failures}
    assert failures["a_typo"] == "unknown hook genframe_logg (did you mean genframe_log?)"
    assert failures["b_odd"] == f"unknown hook genframe_frobnicate (genframe's hooks: {', '.join(HOOK_NAMES)})"
    assert "genframe_logg" not in failures["b_odd"]  # the typo never becomes a known hook
    assert {"genframe_log", "genframe_register", "genframe_run_end"} <= set(HOOK_NAMES)


def test_a_wrong_argument_is_named_on_one_line_with_the_package(install, monkeypatch):
    site = install("genframe_argbad_pkg", "argbad", "gf_argbad_plugin", WRONG_ARGUMENT)
    host, caught = load_failing(monkeypatch, "argbad")
    (failure,) = host.failures
    assert failure.error.startswith("genframe_log() takes argument 'metric' that the hook does not pass "
                                    f"(did you mean 'metrics'?) (at {site / 'gf_argbad_plugin.py'}:")
    (message,) = plugin_warnings(caught)
    assert "plugin 'argbad' failed to load" in message and "(package genframe_argbad_pkg)" in message
    assert "\n" not in message
    monkeypatch.setenv("GENFRAME_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"plugin 'argbad' failed to load: genframe_log\(\) takes argument 'metric'"
                                          r".*\(package genframe_argbad_pkg\)$"):
        load_plugins()


def test_a_logger_that_raises_never_stops_training(install, tmp_path):
    site = install("genframe_boom_tools", "boom", "gf_boom_plugin", BOOM)
    genframe.reset_host()
    with pytest.warns(PluginWarning) as caught:
        result = genframe.train("ebm", overrides=TRAIN, run_dir=tmp_path / "r", quiet=True)
    assert result.status == "completed" and result.step == 4
    (message,) = plugin_warnings(caught)
    assert "logger 'boom' from genframe_boom_tools raised in genframe_log" in message
    assert f"(at {site / 'gf_boom_plugin.py'}:{line_of(BOOM, 'json.loads')})" in message
    records = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [2, 4]  # the jsonl logger never missed a step


def test_a_logger_that_raises_fails_a_strict_run(install, tmp_path, monkeypatch):
    install("genframe_boom_tools", "boom", "gf_boom_plugin", BOOM)
    monkeypatch.setenv("GENFRAME_STRICT_PLUGINS", "1")
    genframe.reset_host()
    with pytest.raises(PluginError, match="logger 'boom' from genframe_boom_tools raised in genframe_log"):
        genframe.train("ebm", overrides=TRAIN, run_dir=tmp_path / "r", quiet=True)
