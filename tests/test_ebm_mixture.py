"""Sampling with a mixture of recent snapshots (the ``snapshot_mixture`` callback): members, chains, checkpoints,
resume."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.mixture import SnapshotMixture
from genframe_ebm.sampler import SGLDSampler
from torch import nn

import genframe
from genframe.contracts.errors import ConfigError
from genframe.training.checkpoint import load_checkpoint
from genframe.using.plot import read_metrics

MIXTURE = ['callbacks.use=["snapshot_mixture"]']


def constant(value: float) -> nn.Module:
    """A net that scores every image ``value``."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    nn.init.zeros_(net[1].weight)
    nn.init.constant_(net[1].bias, value)
    return net


def test_each_member_scores_its_own_contiguous_share_of_the_batch():
    mixture = SnapshotMixture([constant(0.0), constant(1.0), constant(2.0)])
    assert mixture.parts(7) == [3, 2, 2] and mixture.parts(2) == [1, 1, 0]
    assert mixture(torch.zeros(7, 1, 2, 2)).flatten().tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert mixture(torch.zeros(2, 1, 2, 2)).flatten().tolist() == [0, 1]


def test_a_snapshot_drops_the_oldest_and_keeps_the_trained_weights_as_the_newest():
    model = constant(1.0)
    mixture = SnapshotMixture.around(model, 3)
    assert mixture.members[-1] is model and not any(p.requires_grad for p in mixture.members[0].parameters())
    biases = lambda: [float(member[1].bias.detach()) for member in mixture.members]  # noqa: E731
    assert biases() == [1, 1, 1]
    for value in (2.0, 3.0):
        with torch.no_grad():
            model[1].bias.fill_(value)
        mixture.snapshot()
    with torch.no_grad():
        model[1].bias.fill_(4.0)
    assert biases() == [2, 3, 4]


def test_a_mixtures_chains_are_each_members_own_chains():
    torch.manual_seed(0)
    members = [SwishEnergyNet(channels=(8, 8, 8, 8), hidden=8) for _ in range(2)]
    sampler = SGLDSampler(steps=4, step_size=10.0, noise=0.005, example_shape=(1, 32, 32))
    init = torch.rand(6, 1, 32, 32) * 2 - 1
    mixed = sampler.sample(SnapshotMixture(members), init, generator=torch.Generator().manual_seed(1)).images
    generator = torch.Generator().manual_seed(1)  # the members' chains, one after the other, with the same stream
    alone = torch.cat([sampler.sample(members[0], init[:3], generator=generator).images,
                       sampler.sample(members[1], init[3:], generator=generator).images])
    assert torch.equal(mixed, alone)
    assert not torch.equal(sampler.sample(members[0], init[3:], generator=torch.Generator().manual_seed(1)).images,
                           mixed[3:])  # the second half really is the second member's


def test_the_mixture_is_sampled_evaluated_checkpointed_and_resumed(data_dir, tmp_path):
    run, straight = tmp_path / "run", tmp_path / "straight"
    mixed = [*TINY, *MIXTURE, "callbacks.snapshot_mixture.members=3", "callbacks.snapshot_mixture.every=2"]
    genframe.train("ebm", overrides=[*mixed, "trainer.max_steps=4", "callbacks.evaluation.every_steps=4",
                                     "callbacks.evaluation.n=16", "callbacks.evaluation.steps=3"], run_dir=run,
                   quiet=True)
    evals = [r for r in read_metrics(run) if "eval/fd" in r]  # the mixture, and the trained net beside it
    assert len(evals) == 1 and evals[0]["eval/fd"] != evals[0]["eval/trained/fd"]
    state = load_checkpoint(run)
    live, mixture = state["model"], state["sampling_model"]
    snapshots = state["callbacks"]["snapshot_mixture"]["snapshots"]
    assert len(snapshots) == 2  # the snapshots at steps 2 and 4: the newest is the trained net at step 4
    assert all(torch.equal(mixture[f"members.2.{k}"], live[k]) for k in live)
    assert all(torch.equal(snapshots[1][k], live[k]) for k in live)
    assert any(not torch.equal(snapshots[0][k], live[k]) for k in live)

    loaded = genframe.load(run)  # `genframe sample` and `eval` sample the mixture
    assert isinstance(loaded.model, SnapshotMixture) and len(loaded.model.members) == 3
    assert all(torch.equal(v, mixture[k]) for k, v in loaded.model.state_dict().items())
    assert loaded.sample(n=5).images.shape == (5, 1, 32, 32)

    # The snapshots are part of the exact resume: 4 + 2 steps equal 6 straight.
    genframe.train("ebm", resume=run, overrides=["trainer.max_steps=6"], quiet=True)
    genframe.train("ebm", overrides=mixed, run_dir=straight, quiet=True)
    a, b = load_checkpoint(run), load_checkpoint(straight)
    assert a["sampling_model"].keys() == b["sampling_model"].keys()
    assert all(torch.equal(a["sampling_model"][k], b["sampling_model"][k]) for k in a["sampling_model"])


def test_a_mixture_does_not_change_training(data_dir, tmp_path):
    # Snapshots draw no random numbers and touch no trained weight, so a run trains the same without them.
    for name, extra in (("plain", []), ("mixed", [*MIXTURE, "callbacks.snapshot_mixture.members=3",
                                                  "callbacks.snapshot_mixture.every=1"])):
        genframe.train("ebm", overrides=[*TINY, *extra], run_dir=tmp_path / name, quiet=True)
    a, b = load_checkpoint(tmp_path / "plain"), load_checkpoint(tmp_path / "mixed")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["trainer"]["generator"], b["trainer"]["generator"])


def test_a_mixture_with_a_moving_average_is_refused(data_dir, tmp_path):
    # Both supply the weights to sample with; a run samples with one, so the other's would be kept for nothing.
    with pytest.raises(ConfigError, match=r"^invalid config: callbacks 'snapshot_mixture' and 'ema' each supply "
                                          r"the weights to sample and evaluate with.*; choose one of them$"):
        genframe.train("ebm", overrides=[*TINY, 'callbacks.use=["snapshot_mixture", "ema"]',
                                         "callbacks.snapshot_mixture.members=4", "callbacks.ema.decay=0.999"],
                       run_dir=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()  # refused when the config is resolved, before anything is written
