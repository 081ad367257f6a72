"""Checkpoints prove they are whole: a content checksum verified on load, the previous checkpoint
kept beside the last, one clear line for every damaged, foreign, truncated or malformed file, and
old checkpoints (no checksum) still load with one notice."""

from __future__ import annotations

import warnings

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY

import genframe
from genframe.cli.main import cli
from genframe.contracts.errors import CheckpointError
from genframe.training.checkpoint import content_checksum, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import os

    if not os.path.isdir(os.path.join(os.environ.get("GENFRAME_DATA_DIR", ""), "mnist")):
        pytest.skip("MNIST not found; set GENFRAME_DATA_DIR")
    path = tmp_path_factory.mktemp("integrity") / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=path, quiet=True)
    return path


def test_a_byte_flipped_inside_a_weight_is_caught_and_the_previous_checkpoint_named(run, tmp_path):
    last = run / "checkpoints" / "last.pt"
    data = bytearray(last.read_bytes())
    weight = next(v for v in load_checkpoint(last)["model"].values() if v.numel() >= 64)
    at = bytes(data).find(weight.contiguous().view(torch.uint8).numpy().tobytes())
    assert at > 0  # torch.save stores tensor bytes as they are
    data[at + 5] ^= 0x10
    damaged = run / "checkpoints" / "damaged.pt"
    damaged.write_bytes(bytes(data))
    torch.load(damaged, weights_only=True)  # PyTorch's reader alone would not notice
    with pytest.raises(CheckpointError, match=r"damaged \(its content does not match its checksum.*previous "
                                              r"checkpoint is whole: use .*previous.pt instead"):
        load_checkpoint(damaged)
    damaged.unlink()


def test_a_damaged_last_checkpoint_resumes_from_the_previous_one(run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    last = copy / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    result = CliRunner().invoke(cli, ["run", "ebm", "--resume", str(copy)])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output
    assert "is damaged (truncated or corrupted" in errors[0] and "previous.pt" in errors[0]
    previous_step = load_checkpoint(copy / "checkpoints" / "previous.pt")["loop"]["step"]
    with pytest.warns(UserWarning, match="renamed to last.pt.damaged"):
        resumed = genframe.train("ebm", overrides=["trainer.max_steps=3"], resume=copy / "checkpoints" / "previous.pt",
                                 quiet=True)
    assert previous_step <= 2 and resumed.step == 3 and load_checkpoint(copy)["loop"]["step"] == 3
    # the damaged file was set aside, so the whole checkpoint resumed from is the one kept as previous
    assert (copy / "checkpoints" / "last.pt.damaged").exists()
    assert load_checkpoint(copy / "checkpoints" / "previous.pt")["loop"]["step"] == previous_step


def test_a_loose_checkpoint_file_is_not_trained_into_its_folder(run, tmp_path):
    import shutil

    loose = tmp_path / "loose.pt"
    shutil.copyfile(run / "checkpoints" / "last.pt", loose)
    result = CliRunner().invoke(cli, ["run", "ebm", "--resume", str(loose), "--set", "trainer.max_steps=4"])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "is not in a run directory's checkpoints/ folder" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loose.pt"]  # nothing written beside it


@pytest.mark.parametrize("name,content,fragment", [
    ("text", b"hello world\n" * 20, "is not a genframe checkpoint (not a PyTorch checkpoint file)"),
    ("one-byte", b"\x80", "is not a genframe checkpoint (not a PyTorch checkpoint file)"),
    ("empty", b"", "is not a genframe checkpoint (an empty file)"),
])
def test_files_that_are_not_checkpoints_are_named_so(tmp_path, name, content, fragment):
    path = tmp_path / f"{name}.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    assert fragment in str(caught.value) and "could run code" not in str(caught.value)


@pytest.mark.parametrize("change,fragment", [
    (lambda s: s.update(format="2"), "'format' is a str"),
    (lambda s: s.pop("config"), "'config' missing"),
    (lambda s: s.pop("loop"), "'loop' missing"),
    (lambda s: s.update(loop={"epoch": 0}), "'loop' has no step"),
])
def test_malformed_checkpoints_are_one_line_not_a_type_or_key_error(run, tmp_path, change, fragment):
    state = load_checkpoint(run)
    change(state)
    path = tmp_path / "malformed.pt"
    save_checkpoint(path, state) if "format" in state else torch.save(state, path)
    result = CliRunner().invoke(cli, ["sample", str(path), "--out", str(tmp_path / "x.png")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "is not a whole genframe checkpoint" in errors[0] and fragment in errors[0]


def test_a_checkpoint_from_before_checksums_loads_with_one_notice(run, tmp_path):
    state = load_checkpoint(run)
    old = tmp_path / "old.pt"
    torch.save({"format": 2, **state}, old)  # as genframe wrote them before: no checksum
    with pytest.warns(UserWarning, match="carries no checksum") as notices:
        loaded = genframe.load(old, device="cpu")
    assert len([n for n in notices if "checksum" in str(n.message)]) == 1 and loaded.step == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checksummed one loads silently
        load_checkpoint(run)


def test_the_checksum_covers_every_tensor_byte_and_plain_value():
    state = {"format": 2, "model": {"w": torch.arange(6.0).reshape(2, 3)}, "loop": {"step": 3}, "opt": {0: [1.5]}}
    base = content_checksum(state)
    for change in (lambda s: s["model"]["w"].view(-1)[4].add_(1e-3), lambda s: s["loop"].update(step=4),
                   lambda s: s["opt"].update({0: [1.5000001]}), lambda s: s["model"].update(w=s["model"]["w"].double())):
        changed = {"format": 2, "model": {"w": state["model"]["w"].clone()}, "loop": dict(state["loop"]),
                   "opt": {0: list(state["opt"][0])}}
        change(changed)
        assert content_checksum(changed) != base
    assert content_checksum({**state, "checksum": "ignored"}) == base


def test_a_full_disk_inside_torch_save_is_one_line_and_keeps_the_checkpoint(run, tmp_path, monkeypatch):
    before = (run / "checkpoints" / "last.pt").read_bytes()

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 2752 vs 2688")

    monkeypatch.setattr(torch, "save", full_disk)
    result = CliRunner().invoke(cli, ["run", "ebm", "--resume", str(run), "--set", "trainer.max_steps=4"])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "Traceback" not in result.output, result.output
    assert "could not write checkpoint" in errors[0] and "unexpected pos" in errors[0]
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]
