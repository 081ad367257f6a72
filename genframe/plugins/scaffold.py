"""``genframe plugins new NAME``: write a working plugin package to start a model family from.

The package has a recipe, its config, a model, a sampler, a trainer (and, for 2-D points, a dataset, its
pictures and a quality metric), a README, a pyproject.toml with the ``genframe`` entry point and a test that
runs ``genframe.testing.RecipeContract`` and a short ``genframe run``/``sample``/``eval``. It installs with
``pip install -e DIR`` and passes its own test as written.

Two choices shape it: what the samples are (``images``: 1-channel images, MNIST by default; ``vectors``:
2-D points, a registered dataset of its own) and whether the net takes a time beside the examples
(``time_conditioned``: conditional flow matching, a velocity net ``v(x, t)`` and an Euler ODE sampler;
otherwise an energy-based model, an energy net ``E(x)``, Langevin sampling and contrastive divergence).

The files come from ``scaffold_templates/*.tmpl``: ``{{key}}`` is replaced by the plugin's names, and lines
between ``#% if FLAG`` (``#% else``) and ``#% endif`` are kept only when FLAG (``images``, ``vectors``,
``time``, ``energy``) holds. Nothing is written unless all of it is: the package is written into a
temporary folder beside the destination, then renamed into place.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from genframe.contracts.errors import GenframeError
from genframe.util.atomic import current_umask

SAMPLE_KINDS = ("images", "vectors")
NAME_RULE = re.compile(r"[a-z][a-z0-9_]{0,31}")
NAME_HELP = "a lowercase letter, then up to 31 lowercase letters, digits or underscores (e.g. flow, my_ebm2)"
TEMPLATES = "scaffold_templates"
# genframe's config classes the generated config module imports: the recipe's config class, NameConfig, is
# not to shadow one
GENFRAME_SECTIONS = ("DataConfig", "LoggingConfig", "RecipeConfig", "TrainerConfig")

# (template, where it goes, the flag it needs or None): {package} and {name} are filled in
FILES: tuple[tuple[str, str, str | None], ...] = (
    ("pyproject.toml.tmpl", "pyproject.toml", None),
    ("README.md.tmpl", "README.md", None),
    ("init.py.tmpl", "{package}/__init__.py", None),
    ("plugin.py.tmpl", "{package}/plugin.py", None),
    ("config.py.tmpl", "{package}/config.py", None),
    ("model_energy.py.tmpl", "{package}/model.py", "energy"),
    ("model_flow.py.tmpl", "{package}/model.py", "time"),
    ("sampler_energy.py.tmpl", "{package}/sampler.py", "energy"),
    ("sampler_flow.py.tmpl", "{package}/sampler.py", "time"),
    ("trainer_energy.py.tmpl", "{package}/trainer.py", "energy"),
    ("trainer_flow.py.tmpl", "{package}/trainer.py", "time"),
    ("data.py.tmpl", "{package}/data.py", "vectors"),
    ("draw.py.tmpl", "{package}/draw.py", "vectors"),
    ("metric.py.tmpl", "{package}/metric.py", "vectors"),
    ("test_plugin.py.tmpl", "tests/test_{name}.py", None),
)


class ScaffoldError(GenframeError):
    """``genframe plugins new`` cannot write the plugin as asked (a bad name, a folder in the way)."""


@dataclass(frozen=True)
class Scaffold:
    """What :func:`write_plugin` wrote."""

    name: str  # the recipe and the entry point's name
    folder: Path  # the new project folder
    package: str  # its import package, genframe_NAME
    files: tuple[str, ...]  # relative to ``folder``, in the order written
    summary: str  # what the model is, one phrase

    def next_commands(self) -> list[str]:
        """What to run next: install the package, then its test."""
        return [f"pip install -e {shlex.quote(str(self.folder))}",
                f"python -m pytest {shlex.quote(str(self.folder / 'tests'))}"]


def check_name(name: str) -> None:
    """Refuse a NAME that cannot be a recipe, an entry point and the ``genframe_NAME`` package at once."""
    if not NAME_RULE.fullmatch(name):
        raise ScaffoldError(f"plugin name {name!r} is not allowed: use {NAME_HELP}")
    config_class = f"{camel(name)}Config"
    if config_class in GENFRAME_SECTIONS:  # the config module imports genframe's class of that name
        raise ScaffoldError(f"plugin name {name!r} would name its config class {config_class}, as genframe names "
                            "one of its own: choose another")


def check_untaken(name: str, dataset: str | None) -> None:
    """Refuse a NAME an installed plugin already uses: as a plugin name, only one of the two would load; as a
    recipe or dataset name, every command would have to qualify it (``PLUGIN:NAME``) to say which."""
    from genframe.plugins.host import get_host

    host = get_host()
    plugins = {info.name for info in host.plugins}
    if name in plugins:
        raise ScaffoldError(f"plugin name {name!r} is taken by an installed plugin (see `genframe plugins`): "
                            "choose another")
    for entry in host.registry.entries():
        if (entry.kind, entry.name) in (("recipe", name), ("dataset", dataset)):
            raise ScaffoldError(f"{entry.kind} {entry.name!r} is already registered by plugin {entry.plugin} "
                                "(see `genframe plugins`): choose another plugin name")


def check_destination(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ScaffoldError(f"{folder} exists and is not a folder: choose another --dir")
    if folder.is_dir() and any(folder.iterdir()):
        raise ScaffoldError(f"{folder} exists and is not empty: choose another --dir (or remove it)")


def core_requirement() -> str:
    """``genframe>=X.Y`` for the genframe writing the plugin (its ``model_inputs`` hook is 0.2's)."""
    from genframe.version import genframe_version

    match = re.match(r"(\d+)\.(\d+)", genframe_version())
    return f"genframe>={match[1]}.{match[2]}" if match and (int(match[1]), int(match[2])) >= (0, 2) else "genframe>=0.2"


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def describe_model(samples: str, time_conditioned: bool) -> tuple[str, str]:
    """What the plugin's model is, in a phrase, and how it works, in another."""
    what = "MNIST images" if samples == "images" else "2-D points"
    if time_conditioned:
        return f"a conditional flow-matching model of {what}", "velocity MLP v(x, t), Euler ODE sampler"
    return f"an energy-based model of {what}", "MLP energy, Langevin sampling, contrastive divergence"


def render(text: str, flags: set[str], values: dict[str, str], source: str = "template") -> str:
    """Keep the lines whose ``#% if`` blocks hold, then fill in ``{{key}}``; blocks nest."""
    kept: list[str] = []
    stack: list[bool] = []  # whether each open block's current branch is kept
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        words = line.split()
        if words[:1] == ["#%"]:
            command = words[1:]
            if command[:1] == ["if"] and len(command) == 2:
                stack.append(command[1] in flags)
            elif command == ["else"] and stack:
                stack[-1] = not stack[-1]
            elif command == ["endif"] and stack:
                stack.pop()
            else:
                raise ValueError(f"{source}:{number}: unknown template line {line.strip()!r}")
            continue
        if all(stack):
            kept.append(line)
    if stack:
        raise ValueError(f"{source}: a '#% if' block is never closed")

    def fill(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise ValueError(f"{source}: no value for {{{{{match[1]}}}}}")
        return values[match[1]]

    return re.sub(r"\{\{(\w+)\}\}", fill, "".join(kept))


def plugin_files(name: str, samples: str = "images", time_conditioned: bool = False) -> dict[str, str]:
    """The plugin's files, relative path -> text, without writing anything."""
    check_name(name)
    if samples not in SAMPLE_KINDS:
        raise ScaffoldError(f"--samples must be one of {', '.join(SAMPLE_KINDS)}, not {samples!r}")
    flags = {samples, "time" if time_conditioned else "energy"}
    package = f"genframe_{name}"
    summary, details = describe_model(samples, time_conditioned)
    options = "" if samples == "images" else " --samples vectors"
    options += " --time-conditioned" if time_conditioned else ""
    values = {
        "name": name, "Name": camel(name), "package": package, "dist": f"genframe-{name}",
        "dataset": f"{name}_ring", "summary": summary, "Summary": summary[:1].upper() + summary[1:], "details": details,
        "command": f"genframe plugins new {name}{options}", "requirement": core_requirement(),
    }
    templates = resources.files(__package__) / TEMPLATES
    files = {}
    for template, target, flag in FILES:
        if flag is None or flag in flags:
            text = (templates / template).read_text(encoding="utf-8")
            files[target.format(package=package, name=name)] = render(text, flags, values, template)
    return files


def write_plugin(name: str, folder: str | Path | None = None, samples: str = "images",
                 time_conditioned: bool = False) -> Scaffold:
    """Write the plugin ``name`` into ``folder`` (default ``./genframe-NAME``), which must not exist or be
    empty; all of it or nothing."""
    check_name(name)
    folder = Path(folder if folder is not None else f"genframe-{name}")
    check_destination(folder)
    files = plugin_files(name, samples, time_conditioned)
    check_untaken(name, f"{name}_ring" if samples == "vectors" else None)
    shown, folder = folder, folder.expanduser().absolute()  # what the user named, and where it is
    parent = folder.parent
    made = [p for p in (parent, *parent.parents) if not p.exists()]  # folders this makes: gone again on failure
    staging = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".new", dir=parent))
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700; the folder gets the usual permissions
        if folder.is_dir():  # an empty folder (the current one, say): filled, never replaced under the user's feet
            check_destination(folder)
            for child in sorted(staging.iterdir()):
                os.rename(child, folder / child.name)
            staging.rmdir()
        else:
            os.rename(staging, folder)
    except BaseException as exc:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
            if folder.is_dir():  # what was moved into an existing folder before the failure
                for top in {Path(relative).parts[0] for relative in files}:
                    target = folder / top
                    if target.is_dir():
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        target.unlink(missing_ok=True)
        for made_folder in made:  # innermost first
            try:
                made_folder.rmdir()
            except OSError:
                break
        if isinstance(exc, OSError):
            raise ScaffoldError(f"could not write {folder}: {exc.strerror or exc}; choose another --dir") from None
        raise
    summary, details = describe_model(samples, time_conditioned)
    return Scaffold(name, shown, f"genframe_{name}", tuple(files), f"{summary} ({details})")
