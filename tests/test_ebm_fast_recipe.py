"""The fast recipe's parts: weight averaging for sampling, short-run chains from noise, the recipe file."""

from __future__ import annotations

import tomllib

import torch
from conftest import REPO, TINY

import genframe
from genframe.training.checkpoint import load_checkpoint
from genframe.using.plot import read_metrics

EMA = ['callbacks.use=["ema"]', "callbacks.ema.decay=0.5"]


def test_ema_weights_are_sampled_checkpointed_and_resumed(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, *EMA, "trainer.max_steps=4", "callbacks.evaluation.every_steps=4",
                                     "callbacks.evaluation.n=16", "callbacks.evaluation.steps=3",
                                     'callbacks.disable=["keep_best"]'], run_dir=run,  # no end-of-run choice:
                   quiet=True)  # the averaged weights are what the run samples with (test_sample_choice.py)
    rows = read_metrics(run)
    evals = [r for r in rows if "eval/fd" in r]  # the averaged weights, and the trained ones beside them
    assert len(evals) == 1 and evals[0]["eval/fd"] != evals[0]["eval/trained/fd"]
    state = load_checkpoint(run)
    live, averaged = state["model"], state["sampling_model"]
    assert state["callbacks"]["ema"]["average"].keys() == live.keys()
    assert all(torch.equal(averaged[k], state["callbacks"]["ema"]["average"][k]) for k in live)
    assert any(not torch.equal(live[k], averaged[k]) for k in live)  # averaging lags the trained weights

    loaded = genframe.load(run)  # sample and eval use the averaged weights
    assert all(torch.equal(v, averaged[k]) for k, v in loaded.model.state_dict().items())

    # The average is part of the exact resume: 4 + 2 steps equal 6 straight.
    genframe.train("ebm", resume=run, overrides=["trainer.max_steps=6"], quiet=True)
    straight = tmp_path / "straight"
    genframe.train("ebm", overrides=[*TINY, *EMA], run_dir=straight, quiet=True)
    a, b = load_checkpoint(run), load_checkpoint(straight)
    assert all(torch.equal(a["sampling_model"][k], b["sampling_model"][k]) for k in live)


def test_ema_is_the_moving_average_of_the_weights():
    from genframe.callbacks.ema import averaged_copy, update_average

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


def test_fast_recipe_file_is_short_run_training_with_matching_generation():
    fast = genframe.recipe_config("ebm", REPO / "examples" / "ebm_mnist_fast.toml")
    assert fast.buffer.fresh_prob == 1.0  # every chain from noise...
    assert fast.sampler.generate_steps == fast.sampler.steps == 30  # ...for as many steps as generation runs
    assert fast.callbacks.table("evaluation")["every_steps"] and fast.trainer.lr == 1e-3
    assert fast.trainer.r1 > 0 and fast.trainer.r1_every > 1  # the penalty that damps its swings, lazily
    assert fast.trainer.lr_decay_steps == "100%"  # the decay spans the whole run, however long a budget makes it
    assert fast.sampler.precision == "auto"  # bf16 where it pays: 1.6x per step on a Zen 4, 1.0x on a Xeon
    # generation from the net and 7 snapshots, no moving average
    assert "snapshot_mixture" in fast.callbacks.use and "ema" not in fast.callbacks.use
    assert fast.callbacks.table("snapshot_mixture")["members"] == 8
    reference = genframe.recipe_config("ebm", REPO / "examples" / "ebm_mnist.toml")
    assert fast.model == reference.model  # same network: the gain is in how it is trained and sampled
    with open(REPO / "examples" / "ebm_mnist_fast.toml", "rb") as file:
        assert tomllib.load(file)["recipe"] == "ebm"


def test_fast_recipe_runs_and_samples_with_its_own_generation_settings(data_dir, tmp_path, monkeypatch):
    from genframe_ebm.mixture import SnapshotMixture
    from genframe_ebm.sampler import SGLDSampler

    run = tmp_path / "fast"
    small = ["trainer.batch_size=16", "trainer.max_steps=4", "callbacks.evaluation.every_steps=4",
             "callbacks.evaluation.n=16",
             "logging.sample_every=4", "logging.sample_n=4", "logging.chain_n=2", "trainer.val_batch_size=2000",
             'callbacks.disable=["keep_best"]']  # the recipe's mixture is sampled with, whatever 4 steps measure
    result = genframe.train("ebm", REPO / "examples" / "ebm_mnist_fast.toml", small, run_dir=run, quiet=True)
    assert result.status == "completed" and result.step == 4
    loaded = genframe.load(run)
    assert loaded.sampler.generate_steps == 30 and loaded.sampler.precision == "auto"  # generation as trained
    assert isinstance(loaded.model, SnapshotMixture) and len(loaded.model.members) == 8  # the recipe's mixture
    calls = []
    original = SGLDSampler.sample

    def counting(self, model, init, steps=None, keep_every=None, generator=None):
        calls.append(steps)
        return original(self, model, init, steps, keep_every, generator)

    monkeypatch.setattr(SGLDSampler, "sample", counting)
    genframe.sample_to_files(run, tmp_path / "grid.png", n=4)
    assert calls == [30] * 5  # no --steps: the recipe's 30-step generation, then each member's share of it


def test_fresh_prob_one_trains_short_run_chains_from_noise(data_dir, tmp_path):
    """buffer.fresh_prob = 1: every training chain starts from uniform noise, as generation does."""
    from genframe_ebm.buffer import ReplayBuffer

    buffer = ReplayBuffer(64, (1, 4, 4), 16, 1.0, torch.device("cpu"), torch.Generator().manual_seed(0))
    buffer.push(torch.full((16, 1, 4, 4), 0.123))
    drawn = buffer.draw(16)
    assert not (drawn == 0.123).any() and drawn.min() >= -1 and drawn.max() <= 1


def test_the_best_evaluation_keeps_its_weights_in_best_pt(data_dir, tmp_path):
    run = tmp_path / "run"
    every = ["callbacks.evaluation.every_steps=2", "callbacks.evaluation.n=16", "callbacks.evaluation.steps=3",
             "trainer.max_steps=6"]
    genframe.train("ebm", overrides=[*TINY, *every], run_dir=run, quiet=True)
    evals = [r for r in read_metrics(run) if "eval/fd" in r]
    best = min(evals, key=lambda r: r["eval/fd"])
    kept = load_checkpoint(run / "checkpoints" / "best.pt")
    assert [r["step"] for r in evals] == [2, 4, 6]
    assert kept["loop"]["step"] == kept["callbacks"]["keep_best"]["step"] == best["step"]
    assert kept["callbacks"]["keep_best"]["best"] == best["eval/fd"]
    if best["step"] != 6:  # the best is not the last: last.pt moved on, best.pt did not
        assert any(not torch.equal(v, load_checkpoint(run)["model"][k]) for k, v in kept["model"].items())
    assert load_checkpoint(run)["callbacks"]["keep_best"]["best"] == best["eval/fd"]  # in last.pt too: resumes know it
    assert genframe.load(run / "checkpoints" / "best.pt").sample(4).images.shape[0] == 4
