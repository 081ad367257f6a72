"""Importing genframe and asking the CLI for help import neither torch nor pydantic: the CLI answers at
once, and a plugin's entry point can import genframe cheaply."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHECK = """
import sys
{code}
heavy = sorted(name for name in ("torch", "pydantic", "numpy") if name in sys.modules)
print("heavy:", ",".join(heavy) or "none")
"""


def imported_after(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", CHECK.format(code=code)], capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_import_genframe_is_light_and_its_names_resolve_on_use():
    assert imported_after("import genframe") == "heavy: none"
    # the callback contract needs pydantic (its settings), not torch
    assert imported_after("import genframe; genframe.Callback; genframe.DivergenceError") == "heavy: pydantic"
    # a name resolves to what its module defines: the evaluate function, even once its module is imported
    assert imported_after("import genframe, genframe.evaluate, inspect\n"
                          "assert inspect.isfunction(genframe.evaluate), genframe.using.evaluate").startswith("heavy:")


def test_the_cli_help_imports_no_torch():
    code = "from genframe.cli.main import cli\ntry:\n    cli(['--help'], prog_name='genframe')\nexcept SystemExit:\n    pass"
    assert imported_after(code) == "heavy: none"


def test_listing_plugins_and_printing_a_config_import_no_torch(monkeypatch, tmp_path):
    # with the example plugins installed too: each registers by reference and imports torch in its builders
    import os
    from pathlib import Path

    from example_plugins import install_example

    examples = Path(__file__).resolve().parents[1] / "examples" / "plugins"
    for name in ("genframe-vae", "genframe-toy2d"):
        install_example(examples / name, tmp_path / name, monkeypatch)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(sys.path))
    for args in (["run", "--help"], ["plugins"], ["config", "show", "ebm"], ["config", "show", "vae"],
                 ["config", "show", "toy2d"]):
        code = (f"from genframe.cli.main import cli\ntry:\n    cli({args!r}, prog_name='genframe')\n"
                "except SystemExit as exit:\n    assert not exit.code, exit.code")
        assert "torch" not in imported_after(code), args


SPINCOUNT_SEEN = """
import os, sys
import genframe.__main__ as entry
sys.argv = ["genframe", "--version"]
try:
    entry.main()
except SystemExit:
    pass
print("GOMP_SPINCOUNT", os.environ.get("GOMP_SPINCOUNT"))
"""


@pytest.mark.slow
def test_the_command_sets_openmps_spin_before_torch_loads_and_keeps_the_users():
    import os

    def seen(env: dict) -> str:
        done = subprocess.run([sys.executable, "-c", SPINCOUNT_SEEN], capture_output=True, text=True, timeout=120,
                              check=True, env=env)
        return done.stdout.strip().splitlines()[-1]

    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    assert seen(env) == "GOMP_SPINCOUNT 20000"
    assert seen({**env, "GOMP_SPINCOUNT": "5"}) == "GOMP_SPINCOUNT 5"
    late = ("import torch, os\nfrom genframe.util.openmp import spin_less\nspin_less()\n"
            "print(os.environ.get('GOMP_SPINCOUNT'))")  # libgomp already read its settings: nothing to set
    done = subprocess.run([sys.executable, "-c", late], capture_output=True, text=True, timeout=120, check=True, env=env)
    assert done.stdout.strip() == "None"


INTERRUPTED_IN_EXEC = """
import sys
import genframe.cli.main as cli_main
import genframe.__main__ as entry


def interrupted_while_a_dataclass_is_made():  # as a Ctrl-C that lands while a module import builds one
    exec("raise KeyboardInterrupt")


cli_main.main = interrupted_while_a_dataclass_is_made
entry.main()
"""


def test_an_interrupt_inside_exec_of_source_still_exits_130_not_killed_by_sigint(tmp_path):
    # CPython kills itself with SIGINT at exit (-2 to the parent) once a KeyboardInterrupt has left an exec() of
    # source text, even though genframe caught it and asked for 130: seen once in CI as `assert -2 == 130`
    # run with -m, as `python -m genframe` and `torchrun -m genframe` run (a script file exits otherwise)
    (tmp_path / "interrupted_entry.py").write_text(INTERRUPTED_IN_EXEC)
    done = subprocess.run([sys.executable, "-m", "interrupted_entry"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "genframe: interrupted (SIGINT)" in done.stderr and "Traceback" not in done.stderr, done.stderr
