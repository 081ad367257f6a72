"""The R1 penalty (``trainer.r1``): gamma / 2 * mean ||d score / dx||^2 at real images, optionally lazy."""

from __future__ import annotations

import pytest
import torch
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.sampler import SGLDSampler
from genframe_ebm.trainer import CDTrainer, r1_penalty
from torch import nn

import genframe
from genframe.contracts.errors import ConfigError
from genframe.data.mnist import MNIST


def test_r1_penalty_is_the_squared_input_gradient_and_differentiable_in_the_weights():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))  # score = w.x + b: d score / dx = w for every image
    penalty = r1_penalty(linear, torch.randn(5, 1, 4, 4))
    weight = linear[1].weight
    assert torch.allclose(penalty, weight.square().sum())
    penalty.backward()
    assert torch.allclose(weight.grad, 2 * weight)  # d ||w||^2 / dw: the penalty trains the weights


def make_trainer(overrides: list[str]) -> CDTrainer:
    config = genframe.recipe_config("ebm", overrides=["trainer.batch_size=16", "buffer.size=64", "sampler.steps=5",
                                                      "sampler.step_size=100", "trainer.lr=0.001", *overrides])
    torch.manual_seed(0)
    sampler = SGLDSampler.from_config(config.sampler, (1, 32, 32))
    return CDTrainer(SwishEnergyNet(channels=(16, 16, 16, 16), hidden=16), sampler, config, torch.device("cpu"))


def test_lazy_r1_is_applied_every_r1_every_steps_weighted_by_as_many():
    real = torch.rand(16, 1, 32, 32) * 2 - 1
    trainer = make_trainer(["trainer.r1=10", "trainer.r1_every=3"])
    shares = []
    for _ in range(6):
        before = r1_penalty(trainer.model, real.clamp(-1, 1)).detach()
        metrics = trainer.step(real)
        shares.append(float(metrics["r1"]))
        if len(shares) % 3 == 1:  # steps 0, 3: gamma / 2 * every * penalty (real noise 0.005 moves it a little)
            assert shares[-1] == pytest.approx(0.5 * 10 * 3 * float(before), rel=0.1)
    assert [share > 0 for share in shares] == [True, False, False, True, False, False]
    assert "r1" not in make_trainer([]).step(real)  # off by default: no metric, no extra pass


def test_r1_makes_real_digits_flatter_for_the_sampler(data_dir):
    """The point of the penalty: at real images the Langevin step (step_size * d score / dx) shrinks."""
    real = MNIST(split="train", root=data_dir).get_batch(torch.arange(16 * 40)).split(16)

    def gradient_at_data(overrides: list[str]) -> float:
        trainer = make_trainer(overrides)
        for batch in real:
            trainer.step(batch)
        return float(r1_penalty(trainer.model, real[0]).detach())

    plain, penalised = gradient_at_data([]), gradient_at_data(["trainer.r1=1000"])
    assert penalised < 0.3 * plain, (penalised, plain)  # measured: 2.2e-5 against 1.2e-4


def test_a_negative_r1_is_refused():
    with pytest.raises(ConfigError, match="r1"):
        genframe.recipe_config("ebm", overrides=["trainer.r1=-1"])

