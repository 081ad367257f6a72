"""Ctrl-C in the first instants of ``genframe``, before a run's own handler exists: one line, exit 130,
never a ``KeyboardInterrupt`` traceback, from the console script's first line of genframe code on."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def console_script_entry() -> tuple[str, str]:
    """(module, function) the ``genframe`` command runs, as pyproject.toml declares it."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        target = tomllib.load(handle)["project"]["scripts"]["genframe"]
    module, function = target.split(":")
    return module, function


# The child does what the console script does: import the entry's module, then call it. "ready" is
# printed in between, once the interpreter itself has started: a signal while Python starts (its site
# import, for one) is the interpreter's to report, not genframe's, and would make the delays meaningless.
CHILD = """
import sys
module, function = sys.argv[1:3]
sys.argv = ["genframe", "--help"]
entry = getattr(__import__(module, fromlist=[function]), function)
print("ready", flush=True)
sys.exit(entry())
"""


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05])
def test_an_interrupt_at_start_up_is_one_line_and_exit_130(delay):
    process = subprocess.Popen([sys.executable, "-c", CHILD, *console_script_entry()], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    if process.returncode in (0, -signal.SIGINT):  # --help finished first (-2: the signal met Python's exit)
        assert "Usage: genframe" in out and not err.strip(), err
    else:
        assert process.returncode == 130, (process.returncode, err)
        assert err.strip().splitlines() == ["genframe: interrupted (SIGINT); files are only ever renamed into place "
                                            "when whole, so nothing is left half-written"]


def test_an_interrupt_while_click_parses_the_command_line_is_the_same_line(monkeypatch):
    import click
    from click.testing import CliRunner

    from genframe.cli.main import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl-C came while click read the arguments (it would say "Aborted!")

    monkeypatch.setattr(click.Group, "parse_args", interrupted)
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 130, result.output
    assert "genframe: interrupted (SIGINT)" in result.output and "Aborted!" not in result.output


def test_every_command_is_sorted_into_those_that_import_torch_first_and_those_that_need_none():
    from genframe.cli.group import TORCH_COMMANDS
    from genframe.cli.main import cli

    # A new command is placed on purpose: a torch command gets torch imported while a Ctrl-C still exits at once
    # (an interrupt inside torch's import can abort the process); the others must not pay for the import.
    assert set(cli.commands) == {*TORCH_COMMANDS, "plugins", "config", "plot", "sweep"}
