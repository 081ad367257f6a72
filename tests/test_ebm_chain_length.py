"""Training chains of varying length (``sampler.steps_min``): each update draws its Langevin steps."""

from __future__ import annotations

import pytest
import torch

import genframe
from genframe.errors import ConfigError
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from genframe_ebm.trainer import CDTrainer


def chain_lengths(overrides: list[str], updates: int = 12) -> list[int | None]:
    config = genframe.recipe_config("ebm", overrides=["trainer.batch_size=4", "buffer.size=16", *overrides])
    torch.manual_seed(0)
    sampler = SGLDSampler.from_config(config.sampler, (1, 32, 32))
    trainer = CDTrainer(SwishEnergyNet(), sampler, config, torch.device("cpu"))
    lengths, sample = [], sampler.sample

    def spy(model, init, steps=None, **kwargs):
        lengths.append(steps)
        return sample(model, init, steps=steps, **kwargs)

    sampler.sample = spy
    for _ in range(updates):
        trainer.train_step(torch.rand(4, 1, 32, 32) * 2 - 1)
    return lengths


def test_each_update_draws_its_chain_length_from_steps_min_to_steps():
    lengths = chain_lengths(["sampler.steps=5", "sampler.steps_min=2"])
    assert all(2 <= n <= 5 for n in lengths) and len(set(lengths)) > 1
    config = genframe.recipe_config("ebm", overrides=["sampler.steps=5", "sampler.steps_min=2"])
    sampler = SGLDSampler.from_config(config.sampler, (1, 32, 32))
    trainer = CDTrainer(SwishEnergyNet(), sampler, config, torch.device("cpu"))
    assert trainer.work_per_step(4) == ("img-steps", 14.0)  # throughput counts the mean length, 3.5 steps
    assert chain_lengths(["sampler.steps=5"]) == [None] * 12  # unset: the sampler's own steps, every update


def test_steps_min_above_steps_is_refused():
    with pytest.raises(ConfigError, match="sampler.steps_min=6 is above sampler.steps=5"):
        genframe.recipe_config("ebm", overrides=["sampler.steps=5", "sampler.steps_min=6"])
