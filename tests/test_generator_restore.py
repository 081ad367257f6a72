"""A run resumed on another kind of device: its trainer's generator state (a CUDA generator's seed and offset,
16 bytes, against a CPU generator's Mersenne Twister) cannot load, so the draws go on from a seed taken from
it, with a warning, and the weights, optimizer and schedule resume as saved. The CUDA state is stood in for by
16 bytes, so the CPU-only machine shows what a GPU run resumed on a laptop meets."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY
from test_flow_plugin import TINY as FLOW_TINY

from genframe import restore_generator
from genframe.cli.main import cli
from genframe.training.checkpoint import load_checkpoint, save_checkpoint

CUDA_LIKE_STATE = torch.arange(16, dtype=torch.uint8)  # what torch.Generator("cuda").get_state() holds


def test_a_state_from_this_device_goes_on_exactly_and_one_from_another_is_seeded_from_it():
    saved = torch.Generator().manual_seed(3)
    torch.rand(5, generator=saved)
    state = saved.get_state()
    same = torch.Generator()
    assert restore_generator(same, state)
    assert torch.equal(torch.rand(4, generator=same), torch.rand(4, generator=saved))

    draws = []
    for _ in range(2):
        other = torch.Generator()
        with pytest.warns(UserWarning, match="not draw-for-draw exact"):
            assert not restore_generator(other, CUDA_LIKE_STATE)
        draws.append(torch.rand(4, generator=other))
    assert torch.equal(draws[0], draws[1])  # the same checkpoint gives the same seed: a resume is repeatable


@pytest.mark.parametrize("recipe, settings", [
    ("ebm", [*TINY, 'logging.loggers=["jsonl"]']),
    pytest.param("flow", FLOW_TINY, marks=pytest.mark.slow),
])
def test_a_run_saved_on_another_kind_of_device_resumes_with_a_warning(recipe, settings, data_dir, tmp_path):
    run = tmp_path / "run"
    sets = [arg for item in settings for arg in ("--set", item)]
    first = CliRunner().invoke(cli, ["run", recipe, "--run-dir", str(run), "--quiet", *sets,
                                     "--set", "trainer.max_steps=2"])
    assert first.exit_code == 0, first.output
    path = run / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    state["trainer"]["generator"] = CUDA_LIKE_STATE  # as if trained on a GPU
    state["trainer_ranks"] = None
    save_checkpoint(path, state)
    with pytest.warns(UserWarning, match="another kind of device than this cpu.*not draw-for-draw exact"):
        resumed = CliRunner().invoke(cli, ["run", recipe, "--resume", str(run), "--quiet", "--set",
                                           "trainer.max_steps=4"])
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(path)["loop"]["step"] == 4
