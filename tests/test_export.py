"""`genframe export`: a folder to share (safetensors weights, config, record, eval, grid, model card)
that genframe.load, `genframe sample` and `genframe eval` take like a run, without unpickling."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY

import genframe
from genframe.cli.main import cli


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    import os

    if not os.path.isdir(os.path.join(os.environ.get("GENFRAME_DATA_DIR", ""), "mnist")):
        pytest.skip("MNIST not found; set GENFRAME_DATA_DIR")
    base = tmp_path_factory.mktemp("export")
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=base / "plain", quiet=True)
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=4", 'callbacks.use=["ema"]'], run_dir=base / "ema",
                   quiet=True)
    genframe.evaluate(base / "plain", n=50, steps=5, device="cpu", log=False)
    return base


def test_export_writes_the_folder_and_it_samples_exactly_as_the_run(runs, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(runs / "plain"), "--out", str(tmp_path / "model"), "--grid-n", "16",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "model"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "eval.json", "export.json",
                                                        "model.safetensors", "samples.png"]
    record = json.loads((folder / "export.json").read_text())
    assert record["recipe"] == "ebm" and record["step"] == 2 and record["weights"] == "model"
    card = (folder / "README.md").read_text()
    assert "trained on `mnist` for 2 steps" in card and "| samples |" in card and "genframe.load('model')" in card
    exported, original = genframe.load(folder, device="cpu"), genframe.load(runs / "plain", device="cpu")
    assert exported.exported and torch.equal(exported.sample(8, steps=5).images, original.sample(8, steps=5).images)


def test_a_callbacks_sampling_weights_are_what_is_exported(runs, tmp_path):
    genframe.export_model(runs / "ema", tmp_path / "model", grid_n=4, device="cpu")
    assert json.loads((tmp_path / "model" / "export.json").read_text())["weights"] == "sampling_model"
    exported, original = genframe.load(tmp_path / "model", device="cpu"), genframe.load(runs / "ema", device="cpu")
    for (name, a), (_, b) in zip(exported.model.state_dict().items(), original.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_loading_an_export_never_unpickles(runs, tmp_path, monkeypatch):
    from genframe.using.export import export_model

    export_model(runs / "plain", tmp_path / "model", grid_n=4, device="cpu")

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert genframe.load(tmp_path / "model", device="cpu").sample(2, steps=2).images.shape == (2, 1, 32, 32)


def test_sample_and_eval_take_the_folder_and_eval_logs_nowhere_else(runs, tmp_path):
    from genframe.using.export import export_model

    folder = export_model(runs / "plain", tmp_path / "model", grid_n=4, device="cpu")
    (folder / "eval.json").unlink()
    sampled = CliRunner().invoke(cli, ["sample", str(folder), "--n", "4", "--steps", "2", "--out", str(tmp_path / "s.png")])
    assert sampled.exit_code == 0 and (tmp_path / "s.png").exists(), sampled.output
    evaluated = CliRunner().invoke(cli, ["eval", str(folder), "--n", "20", "--steps", "2", "--device", "cpu"])
    assert evaluated.exit_code == 0 and json.loads((folder / "eval.json").read_text())["n"] == 20, evaluated.output
    assert not (folder / "metrics.jsonl").exists()  # the folder is no run: eval tells no run's loggers


def test_bad_exports_are_one_line(runs, tmp_path):
    from genframe.using.export import export_model

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    result = CliRunner().invoke(cli, ["export", str(runs / "plain"), "--out", str(tmp_path / "taken")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "already exists and is not an empty folder" in errors[0]
    folder = export_model(runs / "plain", tmp_path / "model", grid_n=4, device="cpu")
    (folder / "config.json").write_text("{not json")
    result = CliRunner().invoke(cli, ["sample", str(folder), "--out", str(tmp_path / "s.png")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "is not a whole genframe export" in errors[0]
    assert "Traceback" not in result.output


def test_an_interrupted_export_leaves_no_folder(runs, tmp_path, monkeypatch):
    from genframe.contracts.components import Recipe

    def interrupted(self, samples, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(Recipe, "draw_samples", interrupted)
    with pytest.raises(KeyboardInterrupt):
        genframe.export_model(runs / "plain", tmp_path / "model", grid_n=4, device="cpu")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its hidden staging copy


def one_error_line(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def test_damaged_or_incomplete_exports_and_unwritable_places_are_one_line(runs, tmp_path):
    from genframe.using.export import export_model

    folder = export_model(runs / "plain", tmp_path / "model", grid_n=4, device="cpu")
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(weights[:100])  # cut short
    line = one_error_line(CliRunner().invoke(cli, ["sample", str(folder), "--out", str(tmp_path / "s.png")]))
    assert "model.safetensors is damaged" in line and "export the run again" in line
    record = json.loads((folder / "export.json").read_text())
    del record["weights_sha256"]  # an export made before the checksum: safetensors' own check still holds
    (folder / "export.json").write_text(json.dumps(record))
    line = one_error_line(CliRunner().invoke(cli, ["sample", str(folder), "--out", str(tmp_path / "s.png")]))
    assert "is not a whole genframe export" in line and "export the run again" in line
    (folder / "model.safetensors").write_bytes(weights)
    record = json.loads((folder / "export.json").read_text())
    del record["step"]
    (folder / "export.json").write_text(json.dumps(record))
    line = one_error_line(CliRunner().invoke(cli, ["eval", str(folder), "--n", "4"]))
    assert "export.json lacks step" in line
    (tmp_path / "file").write_text("not a folder")
    line = one_error_line(CliRunner().invoke(cli, ["export", str(runs / "plain"), "--out", str(tmp_path / "file" / "m")]))
    assert "cannot write" in line and "--out" in line


def test_the_card_quotes_only_an_evaluation_of_the_exported_checkpoint(runs, tmp_path):
    from genframe.using.export import export_model

    (tmp_path / "run").mkdir()
    # the run's eval.json measured step 2; a checkpoint of another step must not carry those figures
    run = tmp_path / "run"
    for name in ("config.json", "eval.json"):
        (run / name).write_bytes((runs / "plain" / name).read_bytes())
    (run / "checkpoints").mkdir()
    from genframe.training.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(runs / "plain")
    state["loop"]["step"] = 1
    save_checkpoint(run / "checkpoints" / "last.pt", state)
    with pytest.warns(UserWarning, match="measured last.pt at step 2, not last.pt at step 1"):
        folder = export_model(run, tmp_path / "model", grid_n=4, device="cpu")
    assert not (folder / "eval.json").exists() and "## Quality" not in (folder / "README.md").read_text()
    matching = export_model(runs / "plain", tmp_path / "matching", grid_n=4, device="cpu")
    assert json.loads((matching / "eval.json").read_text())["step"] == 2


def test_a_flipped_bit_in_the_exported_weights_is_caught(runs, tmp_path):
    # safetensors reads a flipped bit in a weight as a valid (wild) number: the record's checksum catches it
    from genframe.using.export import export_model

    folder = export_model(runs / "plain", tmp_path / "model", grid_n=4, device="cpu")
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-3] ^= 0x40  # an exponent bit of the last weight
    (folder / "model.safetensors").write_bytes(bytes(data))
    line = one_error_line(CliRunner().invoke(cli, ["sample", str(folder), "--out", str(tmp_path / "s.png")]))
    assert "model.safetensors is damaged: its SHA-256 is not the one export.json recorded" in line
    assert not (tmp_path / "s.png").exists()


def test_an_empty_folder_given_to_export_keeps_its_permissions(runs, tmp_path):
    import os
    import stat

    from genframe.using.export import export_model

    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o555)  # its owner made it read-only
    try:
        if os.access(out, os.W_OK):  # root writes anyway: the folder it gets is read-only as it was, not writable
            export_model(runs / "plain", out, grid_n=4, device="cpu")
            assert stat.S_IMODE(out.stat().st_mode) == 0o555 and (out / "model.safetensors").is_file()
        else:  # anyone else is told, and nothing is replaced
            line = one_error_line(CliRunner().invoke(cli, ["export", str(runs / "plain"), "--out", str(out)]))
            assert f"{out} is not writable" in line and not any(out.iterdir())
    finally:
        out.chmod(0o755)
