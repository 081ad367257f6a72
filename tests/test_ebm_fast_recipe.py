"""The fast recipe's parts: weight averaging for sampling, short-run chains from noise, the recipe file."""

from __future__ import annotations

import json
import tomllib

import pytest
import torch

import genframe
from genframe.checkpoint import load_checkpoint

from conftest import REPO, TINY


def test_ema_weights_are_sampled_checkpointed_and_resumed(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.ema=0.5", "trainer.max_steps=4", "eval.every_steps=4",
                                     "eval.n=16", "eval.steps=3"], run_dir=run, quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fd" in r]  # the averaged weights, and the trained ones beside them
    assert len(evals) == 1 and evals[0]["eval/fd"] != evals[0]["eval/trained/fd"]
    state = load_checkpoint(run)
    live, averaged = state["model"], state["sampling_model"]
    assert state["trainer"]["ema"].keys() == live.keys()
    assert all(torch.equal(averaged[k], state["trainer"]["ema"][k]) for k in live)
    assert any(not torch.equal(live[k], averaged[k]) for k in live)  # averaging lags the trained weights

    loaded = genframe.load(run)  # sample and eval use the averaged weights
    assert all(torch.equal(v, averaged[k]) for k, v in loaded.model.state_dict().items())

    # The average is part of the exact resume: 4 + 2 steps equal 6 straight.
    genframe.train("ebm", resume=run, overrides=["trainer.max_steps=6"], quiet=True)
    straight = tmp_path / "straight"
    genframe.train("ebm", overrides=[*TINY, "trainer.ema=0.5"], run_dir=straight, quiet=True)
    a, b = load_checkpoint(run), load_checkpoint(straight)
    assert all(torch.equal(a["sampling_model"][k], b["sampling_model"][k]) for k in live)


def test_ema_is_the_moving_average_of_the_weights():
    from genframe_ebm.trainer import averaged_copy, update_average

    net = torch.nn.Linear(2, 1)
    average = averaged_copy(net)
    before = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    update_average(average, net, decay=0.75)
    assert torch.allclose(average.weight, before + 0.25) and not average.weight.requires_grad
    assert torch.equal(average.bias, net.bias)


def test_without_ema_the_checkpoint_has_only_the_trained_weights(data_dir, tmp_path):
    genframe.train("ebm", overrides=TINY, run_dir=tmp_path / "run", quiet=True)
    assert "sampling_model" not in load_checkpoint(tmp_path / "run")


def test_fresh_prob_one_trains_short_run_chains_from_noise(data_dir, tmp_path):
    """buffer.fresh_prob = 1: every training chain starts from uniform noise, as generation does."""
    from genframe_ebm.buffer import ReplayBuffer

    buffer = ReplayBuffer(64, (1, 4, 4), 16, 1.0, torch.device("cpu"), torch.Generator().manual_seed(0))
    buffer.push(torch.full((16, 1, 4, 4), 0.123))
    drawn = buffer.draw(16)
    assert not (drawn == 0.123).any() and drawn.min() >= -1 and drawn.max() <= 1
