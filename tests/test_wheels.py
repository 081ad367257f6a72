"""genframe and genframe-ebm install as released software: ``python -m build`` makes their wheels, which
install into a fresh virtual environment with no source tree on the path, train and sample there.

The fresh environment reuses this one's installed dependencies (torch above all) through a path file,
so nothing is downloaded. The wheels go in first, on their own (pip would otherwise take this
environment's editable installs for them); then every dependency the wheels declare is checked
against what the environment sees.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from conftest import REPO

SKIP = shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "dist", ".venv", "runs")


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def build(project: Path, dist: Path) -> None:
    """``python -m build`` of a copy of ``project`` (so nothing is left in the repository), with this
    environment's setuptools rather than a downloaded one."""
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(project)], cwd=project)


# Each wheel's declared dependencies (not its extras), checked against the versions the environment sees.
DEPENDENCIES_MET = """
from importlib import metadata
from packaging.requirements import Requirement
unmet = []
for name in ("genframe", "genframe-ebm"):
    for line in metadata.requires(name) or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            version = None
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(f"{name} needs {requirement}, found {version}")
print("unmet:", "; ".join(unmet) or "none")
"""


@pytest.mark.slow
def test_wheels_install_into_a_fresh_environment_and_train(data_dir, tmp_path):
    dist, core = tmp_path / "dist", tmp_path / "core"
    core.mkdir()
    for name in ("pyproject.toml", "README.md"):  # the README is the package's long description
        shutil.copy(REPO / name, core / name)
    shutil.copytree(REPO / "genframe", core / "genframe", ignore=SKIP)
    shutil.copytree(REPO / "plugins" / "ebm", tmp_path / "ebm", ignore=SKIP)
    build(core, dist)
    build(tmp_path / "ebm", dist)
    wheels = sorted(path.name for path in dist.glob("*.whl"))
    assert [name.split("-")[0] for name in wheels] == ["genframe", "genframe_ebm"], wheels

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    inner = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp_path).strip())
    # this environment's packages (torch, pydantic, ...), after the new one's own: a path line, so their
    # *.pth files (the editable installs of this repository) are not processed
    outer = [sysconfig.get_path("purelib"), *site.getsitepackages()]
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-deps",
         "--ignore-installed", *map(str, sorted(dist.glob("*.whl")))], cwd=tmp_path)
    (inner / "outer-packages.pth").write_text("".join(f"{path}\n" for path in dict.fromkeys(outer)))

    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(GENFRAME_DATA_DIR=str(data_dir), WANDB_MODE="offline")
    where = run([str(python), "-c", "import genframe, genframe.training.run, genframe_ebm; "
                 "print(genframe.training.run.__file__); print(genframe_ebm.__file__)"], cwd=tmp_path, env=env)
    assert all(line.startswith(str(inner)) for line in where.split()), where  # the wheels, not the source tree
    unmet = run([str(python), "-c", DEPENDENCIES_MET], cwd=tmp_path, env=env)
    assert unmet.strip() == "unmet: none", unmet
    genframe_script = str(venv / "bin" / "genframe")
    listed = run([genframe_script, "plugins"], cwd=tmp_path, env=env)
    ebm_version = tomllib.loads((REPO / "plugins" / "ebm" / "pyproject.toml").read_text())["project"]["version"]
    assert f"ebm {ebm_version} (entry point genframe_ebm.plugin)" in listed
    tiny = ["trainer.max_steps=3", "trainer.batch_size=16", "data.limit=64", "sampler.steps=3",
            "sampler.generate_steps=3", "logging.sample_n=4", "logging.chain_n=0", "trainer.val_batch_size=64"]
    trained = run([genframe_script, "run", "ebm", "--run-dir", "run", "--quiet",
                   *[arg for item in tiny for arg in ("--set", item)]], cwd=tmp_path, env=env)
    assert "run completed: run (step 3," in trained
    run([genframe_script, "sample", "run", "--n", "4", "--out", "grid.png"], cwd=tmp_path, env=env)
    assert (tmp_path / "grid.png").stat().st_size > 0
