"""Imports run one way (docs/architecture.md): contracts and helpers at the bottom, then config, plugins,
data, loggers, training, using, the core's callbacks, the API, the CLI; no circles; shipped plugins import
only the public API. Read from the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import shutil

import import_graph
import pytest


def test_the_core_imports_one_way_without_circles():
    edges = import_graph.graph()
    assert import_graph.upward_imports(edges) == []
    assert import_graph.circles(edges) == []


def test_every_core_module_belongs_to_a_room():
    assert [m for m in import_graph.graph() if import_graph.room_of(m) < 0] == []


@pytest.mark.parametrize("package", import_graph.shipped_plugin_packages(), ids=lambda p: p.name)
def test_a_shipped_plugin_imports_only_the_public_api(package):
    assert import_graph.private_imports(package) == []


def plant(tmp_path, module: str, line: str):
    """A copy of the core with ``line`` added inside a function of ``module`` (a lazy import)."""
    shutil.copytree(import_graph.REPO / "genframe", tmp_path / "genframe")
    path = tmp_path / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {line}\n")
    return import_graph.graph(tmp_path)


def test_a_planted_circle_is_caught(tmp_path):
    # the loop importing the run that builds it, lazily: a circle inside one room
    edges = plant(tmp_path, "genframe.training.loop", "from genframe.training.run import TrainingRun")
    assert ["genframe.training.loop", "genframe.training.run"] in import_graph.circles(edges)


def test_a_planted_upward_import_is_caught(tmp_path):
    edges = plant(tmp_path, "genframe.contracts.errors", "import genframe.cli.main")
    assert import_graph.upward_imports(edges) == [
        "genframe.contracts.errors -> genframe.cli.main (foundations imports cli)"]


def test_an_import_for_type_checkers_only_does_not_count(tmp_path):
    shutil.copytree(import_graph.REPO / "genframe", tmp_path / "genframe")
    path = tmp_path / "genframe" / "contracts" / "errors.py"
    path.write_text(path.read_text() + "\n\nif TYPE_CHECKING:\n    import genframe.cli.main\n")
    assert import_graph.upward_imports(import_graph.graph(tmp_path)) == []


def test_a_plugin_reaching_past_the_public_api_is_caught(tmp_path):
    package = tmp_path / "genframe_probe"
    package.mkdir()
    (package / "__init__.py").write_text("from genframe import Recipe\nfrom genframe.training.previews import Previewer\n")
    assert import_graph.private_imports(package) == [
        f"{package / '__init__.py'}: genframe.training.previews",
        f"{package / '__init__.py'}: genframe.training.previews.Previewer"]
