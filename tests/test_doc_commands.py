"""Every ``genframe ...`` command in the README's and docs' fenced blocks works as written.

The commands run in order, file by file (README first), in a scratch directory where ``examples/`` is
the repository's, so a later command finds the run an earlier one made (the README, docs/ and research/
share one; each example plugin's README has its own). A command whose trailing
comment starts with a marker cannot run here and is checked as far as it can be:

- ``[long]``: more training than a test can wait for. ``genframe run`` is run with tiny overrides when
  a later command uses its run directory, otherwise its config (file and ``--set`` values) is validated;
  any other command has its options parsed.
- ``[online]``: needs an internet service (W&B): its config is validated.
- ``[cluster]``: needs several machines: the genframe command inside is parsed and its config validated.
- ``[example]``: names a plugin that only exists in the docs: its options are parsed.

The test prints what it ran and how each skipped command was checked.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field

import click
import pytest
from click.testing import CliRunner
from conftest import REPO
from example_plugins import install_example

import genframe
import genframe.config.sections
from genframe.cli.main import cli

MARKERS = ("long", "online", "cluster", "example")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "research").rglob("*.md")),
        *sorted((REPO / "examples").rglob("README.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
COMMAND = re.compile(r"^((?:\w+=\S+\s+)*)(genframe|python -m genframe|torchrun\b.*?-m genframe)(?=\s|$)\s*(.*)$")
# A tiny run: two steps on a few images, pictures from a few chains of a few steps.
TINY_RUN = ["trainer.max_steps=2", "trainer.batch_size=16", "data.limit=64", "trainer.val_batch_size=64",
            "sampler.steps=3", "sampler.generate_steps=3", "logging.sample_n=4", "logging.chain_n=2",
            "logging.sample_steps=3"]


@dataclass
class DocCommand:
    where: str  # file:line
    scratch: str  # the folder it runs in: one for the README, docs/ and research/ (they share runs), one per example
    env: dict[str, str]
    args: list[str]  # after "genframe"
    marker: str | None
    launcher: str = "genframe"  # or torchrun ...
    how: str = field(default="", compare=False)  # filled in: what the test did


def split_comment(line: str) -> tuple[str, str]:
    """The command and its trailing comment (a ``#`` outside quotes)."""
    quote = None
    for index, char in enumerate(line):
        if char in "'\"" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (index == 0 or line[index - 1].isspace()):
            return line[:index].strip(), line[index + 1:].strip()
    return line.strip(), ""


def doc_commands() -> list[DocCommand]:
    commands = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for fence in FENCE.finditer(text):
            if fence.group(1) not in ("bash", "sh", "console", "shell", ""):
                continue
            first_line = text[: fence.start(2)].count("\n") + 1
            lines = fence.group(2).replace("\\\n", " ").splitlines()
            raw = fence.group(2).splitlines()
            for offset, line in enumerate(lines):
                code, comment = split_comment(line)
                marker = next((m for m in MARKERS if comment.startswith(f"[{m}]")), None)
                for part in code.split("&&"):
                    match = COMMAND.match(part.strip().removesuffix("&").strip())  # "&": in the background
                    if match is None:
                        continue
                    env = dict(item.split("=", 1) for item in match.group(1).split())
                    launcher = match.group(2)
                    number = first_line + _source_line(raw, offset)
                    relative = path.relative_to(REPO)
                    scratch = "docs" if relative.parts[0] in ("README.md", "docs", "research") else relative.parent.name
                    commands.append(DocCommand(f"{relative}:{number}", scratch, env, shlex.split(match.group(3)),
                                               marker, launcher))
    return commands


def _source_line(raw: list[str], joined_index: int) -> int:
    """The line in the fenced block where the ``joined_index``-th logical line (continuations joined) starts."""
    line, logical = 0, 0
    while logical < joined_index:
        while raw[line].endswith("\\"):
            line += 1
        line, logical = line + 1, logical + 1
    return line


def option_values(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == name]


def parse_only(args: list[str]) -> None:
    """Click parses the command line (options, types, choices) without running it."""
    command, ctx, name, rest = cli, None, "genframe", list(args)
    while True:
        ctx = command.make_context(name, rest, parent=ctx)
        if not isinstance(command, click.Group):
            return
        # a group leaves its subcommand's name and arguments unparsed (click 8.2 moved where it keeps them)
        rest = [*(getattr(ctx, "_protected_args", None) or ctx.protected_args), *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)


def validate_config(args: list[str]) -> None:
    """``genframe run RECIPE --config FILE --set ...``: the options parse and the config validates."""
    parse_only(args)
    files = option_values(args, "--config")
    genframe.recipe_config(args[1], files[0] if files else None, option_values(args, "--set"))


def tiny_overrides(recipe: str) -> list[str]:
    """``--set`` arguments for a tiny run: the TINY_RUN settings this recipe's config has."""
    defaults = genframe.config.sections.config_to_dict(genframe.recipe_config(recipe))
    present = []
    for item in TINY_RUN:
        section, _, key = item.partition("=")[0].partition(".")
        if key in defaults.get(section, {}):
            present += ["--set", item]
    return present


def run_cli(command: DocCommand, args: list[str]) -> None:
    """The command through the real CLI, in this process (a process each would spend most of the test
    importing torch); ``python -m genframe`` is the same click group as the ``genframe`` script."""
    genframe.reset_host()
    result = CliRunner().invoke(cli, args, env=command.env or None, catch_exceptions=True)
    assert result.exit_code == 0, (f"{command.where}: genframe {shlex.join(args)} failed ({result.exit_code}):\n"
                                   f"{result.output}{result.exception!r}")


def test_doc_commands_are_found_with_known_markers():
    commands = doc_commands()
    assert len(commands) >= 30
    readme = [c for c in commands if c.where.startswith("README.md")]
    assert readme[0].args[:3] == ["run", "ebm", "--config"] and readme[0].marker == "long"  # the quick start
    for path in DOCS:  # a misspelled marker would silently make a command run for real
        for lang, body in FENCE.findall(path.read_text(encoding="utf-8")):
            for tag in re.findall(r"#\s*\[(\w+)\]", body) if lang in ("bash", "sh", "console", "shell", "") else ():
                assert tag in MARKERS, f"{path.name}: unknown marker [{tag}]; markers are {MARKERS}"
    unmarked_torchrun = [c.where for c in commands if c.launcher.startswith("torchrun") and c.marker is None]
    assert not unmarked_torchrun, f"torchrun lines run several processes: mark them [long] ({unmarked_torchrun})"


@pytest.mark.slow
def test_every_documented_command_works_as_written(data_dir, tmp_path, monkeypatch):
    for example in ("genframe-vae", "genframe-toy2d"):  # docs/plugins.md runs them
        install_example(REPO / "examples" / "plugins" / example, tmp_path / "site" / example, monkeypatch)
    monkeypatch.setenv("GENFRAME_DATA_DIR", str(data_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    # The commands run as written, with the nearest score's two sample counts cut: the pool of the model's own
    # samples (10000 -> 2000), which score and ood draw anew each time (55 of the test's 110 s on a 2-core
    # Zen 3), and the samples that set its units (2000 -> 1000, within the pool); the score is tested in
    # test_scoring.py.
    monkeypatch.setattr("genframe_ebm.scores.POOL_SIZE", 2000)
    monkeypatch.setattr("genframe_ebm.scores.UNIT_SAMPLES", 1000)
    commands = doc_commands()
    report = []
    for index, command in enumerate(commands):
        args, later = command.args, [c for c in commands[index + 1:] if c.scratch == command.scratch]
        scratch = tmp_path / command.scratch
        if not scratch.is_dir():
            scratch.mkdir()
            (scratch / "examples").symlink_to(REPO / "examples")
        monkeypatch.chdir(scratch)  # for the config files named relative to the repository root
        started = time.monotonic()
        run_dir = (option_values(args, "--run-dir") or [None])[0]
        used_later = run_dir is not None and any(run_dir in c.args and c.marker is None for c in later)
        if command.marker is None:
            run_cli(command, args)
            command.how = "ran as written"
        elif args[:1] == ["run"] and command.marker == "long" and used_later:
            validate_config(args)
            run_cli(command, [*args, *tiny_overrides(args[1])])
            command.how = f"[{command.marker}] ran with tiny overrides ({run_dir} is used later)"
        elif args[:1] == ["run"] and command.marker != "example":
            validate_config(args)
            command.how = f"[{command.marker}] options parsed, config validated"
        else:
            parse_only(args)
            command.how = f"[{command.marker}] options parsed"
        report.append(f"{command.where:32} {time.monotonic() - started:5.1f}s {command.launcher} "
                      f"{shlex.join(args)[:70]:72} {command.how}")
    print("\n".join(["documented commands:", *report]))
    ran = [c for c in commands if c.how == "ran as written"]
    assert len(ran) >= 10, "most documented commands should run as written"


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(data_dir, tmp_path, monkeypatch):
    (block,) = [body for lang, body in FENCE.findall((REPO / "README.md").read_text(encoding="utf-8")) if lang == "python"]
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md python example", "exec"), namespace)
    assert namespace["result"].step == 40 and tuple(namespace["images"].shape) == (16, 1, 32, 32)
    assert {"fd", "confidence"} <= set(namespace["quality"]) and (tmp_path / "chain.gif").is_file()
