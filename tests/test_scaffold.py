"""``genframe plugins new NAME``: the package it writes installs and passes its own tests, for each kind of
samples (images, 2-D points) and each kind of net (an energy of x alone; a velocity v(x, t), which needs
``Recipe.model_inputs``); what it refuses, it refuses in one line with nothing written.

Quick tier: the four kinds are installed the way pip leaves a package (a dist-info on sys.path,
tests/example_plugins.py) and their own tests run in one pytest subprocess, with this session's MNIST and
stored classifier (tests/conftest.py). Slow tier: genframe's wheel in a fresh virtual environment writes the
plugin, `pip install -e` installs it, its own `python -m pytest DIR/tests` passes there and `genframe plugins`
lists it.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import import_graph
import pytest
from click.testing import CliRunner
from conftest import REPO
from example_plugins import install_example

import genframe
from genframe.cli.main import cli
from genframe.plugins import scaffold
from genframe.plugins.scaffold import ScaffoldError, render, write_plugin

# name -> (--samples, --time-conditioned): one plugin of each kind, side by side in one process
KINDS = {"img_ebm": ("images", False), "img_flow": ("images", True), "pts_ebm": ("vectors", False),
         "pts_flow": ("vectors", True)}
CONTRACT_TESTS = 10  # RecipeContract's test methods; each generated test file adds one through the CLI


def options(samples: str, time_conditioned: bool) -> list[str]:
    return ["--samples", samples, *(["--time-conditioned"] if time_conditioned else [])]


def new(*args: str):
    return CliRunner().invoke(cli, ["plugins", "new", *args])


def subprocess_env(**extra: str) -> dict[str, str]:
    # GENFRAME_DATA_DIR and GENFRAME_CACHE_DIR (with the stored classifier) come from conftest; one thread each:
    # tiny nets gain nothing from more, and lose a lot on a busy machine
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def test_every_kind_installs_and_passes_its_own_tests(data_dir, tmp_path, monkeypatch):
    site = tmp_path / "site"
    for name, (samples, time_conditioned) in KINDS.items():
        folder = tmp_path / f"genframe-{name}"
        result = new(name, "--dir", str(folder), *options(samples, time_conditioned))
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].startswith(f"wrote {folder}: ") and lines[-3:] == [
            "next:", f"  pip install -e {folder}", f"  python -m pytest {folder / 'tests'}"]
        written = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        assert sorted(line.strip() for line in lines[1:-3]) == written
        own = ["data.py", "draw.py", "metric.py"] if samples == "vectors" else []
        assert written == sorted(["README.md", "pyproject.toml", f"tests/test_{name}.py", *(
            f"genframe_{name}/{file}" for file in ["__init__.py", "config.py", "model.py", "plugin.py",
                                                   "sampler.py", "trainer.py", *own])])
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        assert project["entry-points"]["genframe"] == {name: f"genframe_{name}.plugin"}
        assert import_graph.private_imports(folder / f"genframe_{name}") == []  # the public API only
        install_example(folder, site, monkeypatch)

    host = genframe.get_host()
    assert host.failures == []
    plugins = {info.name: info for info in host.plugins}
    for name, (samples, _) in KINDS.items():
        assert plugins[name].version == "0.1.0" and plugins[name].source == f"entry point genframe_{name}.plugin"
        registered = {(entry.kind, entry.name) for entry in host.registry.entries() if entry.plugin == name}
        assert registered == {("recipe", name), *([("dataset", f"{name}_ring")] if samples == "vectors" else [])}
        shown = CliRunner().invoke(cli, ["config", "show", name])
        assert shown.exit_code == 0, shown.output
        data = tomllib.loads(shown.output)["data"]["name"]
        assert data == (f"{name}_ring" if samples == "vectors" else "mnist")

    env = subprocess_env(PYTHONPATH=os.pathsep.join(sys.path))
    # listing the plugins imports no torch: each imports it in its builders only
    listing = subprocess.run([sys.executable, "-c", "import sys, genframe; genframe.get_host(); "
                              "print('torch' in sys.modules)"], env=env, capture_output=True, text=True, timeout=120)
    assert listing.stdout.strip() == "False", listing.stderr
    tests = [str(tmp_path / f"genframe-{name}" / "tests") for name in KINDS]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    summary = done.stdout.splitlines()[-1]  # all passed: none skipped
    assert summary.startswith(f"{len(KINDS) * (CONTRACT_TESTS + 1)} passed in "), done.stdout[-2000:]


def test_the_flow_recipe_tells_the_pre_run_check_how_to_call_its_net(tmp_path, monkeypatch):
    # without model_inputs the core would call model(examples) and refuse a net that takes (x, t)
    folder = write_plugin("tcheck", tmp_path / "plugin", samples="vectors", time_conditioned=True).folder
    install_example(folder, tmp_path / "site", monkeypatch)
    import torch

    recipe = genframe.get_recipe("tcheck")
    config = recipe.config_class()
    model, examples = recipe.build_model(config), torch.zeros(3, 2)
    inputs = recipe.model_inputs(config, examples)
    assert len(inputs) == 2 and inputs[0] is examples and inputs[1].shape == (3,)
    assert model(*inputs).shape == (3, 2)
    with pytest.raises(TypeError):
        model(examples)


@pytest.mark.parametrize(("args", "says"), [
    (["Demo"], "plugin name 'Demo' is not allowed: use a lowercase letter, then up to 31 lowercase letters, digits "
               "or underscores (e.g. flow, my_ebm2)"),
    (["my-model"], "plugin name 'my-model' is not allowed"),
    (["2d"], "plugin name '2d' is not allowed"),
    (["a" * 33], "is not allowed"),
    (["data"], "plugin name 'data' would name its config class DataConfig, as genframe names one of its own"),
    (["ebm"], "plugin name 'ebm' is taken by an installed plugin (see `genframe plugins`): choose another"),
    (["demo", "--samples", "sounds"], "Invalid value for '--samples': 'sounds' is not one of 'images', 'vectors'"),
], ids=["capital", "hyphen", "digit-first", "too-long", "shadows-genframe", "taken", "samples"])
def test_a_bad_name_is_refused_in_one_line_and_nothing_is_written(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = new(*args)
    assert result.exit_code == 2 and says in result.output, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_folder_in_the_way_is_refused_in_one_line_and_left_as_it_was(tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    (tmp_path / "a-file").write_text("mine too")
    for folder, says in ((taken, "exists and is not empty: choose another --dir (or remove it)"),
                         (tmp_path / "a-file", "exists and is not a folder: choose another --dir")):
        result = new("demo", "--dir", str(folder))
        assert result.exit_code == 2 and result.output == f"Error: {folder} {says}\n", result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "taken"]
    assert [p.name for p in taken.iterdir()] == ["notes.txt"] and (tmp_path / "a-file").read_text() == "mine too"


def test_an_empty_folder_and_the_default_folder_are_written(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    assert new("demo", "--dir", str(tmp_path / "empty")).exit_code == 0
    assert (tmp_path / "empty" / "genframe_demo" / "plugin.py").is_file()
    monkeypatch.chdir(tmp_path)
    result = new("demo")
    assert result.exit_code == 0 and result.output.startswith("wrote genframe-demo: "), result.output
    assert "  pip install -e genframe-demo\n" in result.output
    assert (tmp_path / "genframe-demo" / "tests" / "test_demo.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "genframe-demo"]  # nothing else beside them


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, monkeypatch):
    def no_rename(source, target):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(scaffold.os, "rename", no_rename)
    with pytest.raises(ScaffoldError, match=r"could not write .*plugin: Permission denied"):
        write_plugin("demo", tmp_path / "plugin")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor the temporary one beside it


def test_templates_keep_the_lines_whose_flags_hold():
    text = "a {{name}}\n#% if images\nimages\n#% if time\nflow on images\n#% else\nebm on images\n#% endif\n" \
           "#% else\npoints\n#% endif\nend\n"
    assert render(text, {"images", "time"}, {"name": "x"}) == "a x\nimages\nflow on images\nend\n"
    assert render(text, {"images", "energy"}, {"name": "x"}) == "a x\nimages\nebm on images\nend\n"
    assert render(text, {"vectors", "time"}, {"name": "x"}) == "a x\npoints\nend\n"
    for bad, says in (("#% if images\n", "never closed"), ("#% elif x\n", "unknown template line"),
                      ("{{nope}}\n", "no value for {{nope}}")):
        with pytest.raises(ValueError, match=says):
            render(bad, set(), {})


def test_every_template_is_used_and_shipped_in_the_wheel():
    folder = REPO / "genframe" / "plugins" / scaffold.TEMPLATES
    on_disk = sorted(path.name for path in folder.iterdir() if path.name != "__pycache__")
    assert on_disk == sorted({template for template, _, _ in scaffold.FILES})
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for name in on_disk:
        relative = f"plugins/{scaffold.TEMPLATES}/{name}"
        assert any(fnmatch.fnmatch(relative, glob) for glob in package_data["genframe"]), relative


@pytest.mark.slow
def test_from_the_wheel_in_a_fresh_environment_the_package_installs_and_passes_its_own_tests(data_dir, tmp_path):
    # genframe as released: its wheel (are the templates in it?) in a fresh virtual environment, which reuses
    # this one's dependencies (torch above all) through a path line, so nothing is downloaded
    core, dist, venv = tmp_path / "core", tmp_path / "dist", tmp_path / "venv"
    core.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, core / name)
    shutil.copytree(REPO / "genframe", core / "genframe", ignore=shutil.ignore_patterns("__pycache__"))
    env = {key: value for key, value in subprocess_env().items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env["GENFRAME_DISABLE_PLUGINS"] = "ebm,flow"  # their editable installs are this environment's, not the new one's

    def run(*args: str, timeout: float = 300) -> str:
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-4000:]}{done.stderr[-3000:]}"
        return done.stdout

    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(core))
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = str(venv / "bin" / "python")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-deps", "--ignore-installed",
        *map(str, dist.glob("*.whl")))
    inner = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    outer = [sysconfig.get_path("purelib"), *site.getsitepackages()]  # path lines: their .pth files are not read
    (inner / "outer-packages.pth").write_text("".join(f"{path}\n" for path in dict.fromkeys(outer)))
    assert run(python, "-c", "import genframe.plugins.scaffold as s; print(s.__file__)").startswith(str(inner))

    written = run(python, "-m", "genframe", "plugins", "new", "fresh")  # the default kind, in ./genframe-fresh
    assert written.splitlines()[-2:] == ["  pip install -e genframe-fresh", "  python -m pytest genframe-fresh/tests"]
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-deps", "--no-build-isolation",
        "-e", "genframe-fresh")
    where = run(python, "-c", "import genframe_fresh; print(genframe_fresh.__file__)")
    assert where.strip() == str(tmp_path / "genframe-fresh" / "genframe_fresh" / "__init__.py")
    assert "fresh 0.1.0 (entry point genframe_fresh.plugin)" in run(python, "-m", "genframe", "plugins")
    tested = run(python, "-m", "pytest", "-p", "no:cacheprovider", "genframe-fresh/tests")
    assert f"= {CONTRACT_TESTS + 1} passed in " in tested, tested[-2000:]
