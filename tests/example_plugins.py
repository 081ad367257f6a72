"""Example plugins as installed distributions, the way pip leaves them: the package directory on
sys.path plus a *.dist-info whose entry_points.txt is written from the example's own pyproject.toml,
so genframe discovers them through real entry points without installing them into the venv."""

from __future__ import annotations

import tomllib
from pathlib import Path

import genframe


def project(example: Path) -> dict:
    return tomllib.loads((example / "pyproject.toml").read_text())["project"]


def install_example(example: Path, site: Path, monkeypatch) -> Path:
    """Make ``example`` (an examples/plugins/* folder) discoverable for one test; returns the site folder."""
    meta = project(example)
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    entry_points = "".join(f"{name} = {value}\n" for name, value in meta["entry-points"]["genframe"].items())
    (info / "entry_points.txt").write_text("[genframe]\n" + entry_points)
    monkeypatch.syspath_prepend(str(example))
    monkeypatch.syspath_prepend(str(site))
    genframe.reset_host()
    return site


def sets(settings: list[str]) -> list[str]:
    """``--set`` arguments for the CLI from ``section.key=value`` strings."""
    return [arg for item in settings for arg in ("--set", item)]
