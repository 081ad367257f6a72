"""Energy matching (``trainer.objective = "matching"``): the score's gradient fitted to the flow from noise to the
data, alone for ``trainer.matching_steps``, then beside contrastive divergence."""

from __future__ import annotations

import json

import pytest
import torch
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.matching import matching_loss
from genframe_ebm.sampler import SGLDSampler
from genframe_ebm.trainer import CDTrainer
from torch import nn

import genframe
from genframe.contracts.errors import ConfigError


def test_the_loss_is_the_gradients_distance_from_the_scaled_velocity_and_trains_the_weights():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))  # score = w.x + b: its gradient is w everywhere
    data = torch.rand(6, 1, 4, 4) * 2 - 1
    loss, scores = matching_loss(linear, data, torch.Generator().manual_seed(3), decay_from=0.8)
    replay = torch.Generator().manual_seed(3)  # the same draws, by hand: the start noise, then the times
    noise = torch.rand(data.shape, generator=replay) * 2 - 1
    t = torch.rand((6,), generator=replay)
    scale = ((1 - t) / 0.2).clamp(max=1).view(-1, 1, 1, 1)  # the whole velocity far from the data, none at it
    target = scale * (data - noise)
    w = linear[1].weight.view(1, 1, 4, 4)
    assert torch.allclose(loss, (w - target).square().flatten(1).mean(1).mean())
    x_t = (1 - t.view(-1, 1, 1, 1)) * noise + t.view(-1, 1, 1, 1) * data
    assert torch.allclose(scores.flatten(), linear(x_t).flatten())  # the path's scores, for the bound on them
    loss.backward()
    assert linear[1].weight.grad is not None and linear[1].weight.grad.abs().sum() > 0


def test_matching_time_scales_the_gradient_that_is_fitted():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    data = torch.rand(6, 1, 4, 4) * 2 - 1
    loss, _ = matching_loss(linear, data, torch.Generator().manual_seed(3), decay_from=0.8, time=3000.0)
    replay = torch.Generator().manual_seed(3)
    noise = torch.rand(data.shape, generator=replay) * 2 - 1
    t = torch.rand((6,), generator=replay)
    target = ((1 - t) / 0.2).clamp(max=1).view(-1, 1, 1, 1) * (data - noise)
    w = linear[1].weight.view(1, 1, 4, 4)
    assert torch.allclose(loss, (3000.0 * w - target).square().flatten(1).mean(1).mean())


def test_matching_time_sampler_is_the_training_chains_steps_times_their_step_size():
    trainer = make_trainer(["trainer.objective=matching", "trainer.matching_time=sampler", "sampler.step_size=50"])
    assert trainer.matching_time == 3 * 50.0  # sampler.steps=3 in make_trainer
    assert make_trainer(["trainer.objective=matching"]).matching_time == 1.0  # the default: the gradient is the velocity
    assert make_trainer(["trainer.objective=matching", "trainer.matching_time=2.5"]).matching_time == 2.5


def test_at_the_data_the_target_is_a_resting_point():
    class Bowl(nn.Module):  # score -||x - c||^2 / 2: its gradient c - x vanishes at c
        def forward(self, x):
            return -0.5 * (x - 0.25).square().flatten(1).sum(1)

    data = torch.full((4, 1, 2, 2), 0.25)
    generator = torch.Generator().manual_seed(0)
    # on a path into the bowl's bottom its gradient is (1 - t)(data - noise): the target itself when the decay
    # starts at the noise (decay_from -> 0), so a score with its resting point at the data fits it exactly
    assert float(matching_loss(Bowl(), data, generator, decay_from=1e-9)[0]) < 1e-10
    # with the default decay the target is the whole velocity until 0.8 of the path: the bowl falls short there
    assert float(matching_loss(Bowl(), data, torch.Generator().manual_seed(0), decay_from=0.8)[0]) > 1e-3


def make_trainer(overrides: list[str]) -> CDTrainer:
    config = genframe.recipe_config("ebm", overrides=["trainer.batch_size=8", "buffer.size=16", "sampler.steps=3",
                                                      "buffer.fresh_prob=1", *overrides])
    torch.manual_seed(0)
    sampler = SGLDSampler.from_config(config.sampler, (1, 32, 32))
    return CDTrainer(SwishEnergyNet(channels=(8, 8, 8, 8), hidden=8), sampler, config, torch.device("cpu"))


def test_matching_trains_alone_then_contrastive_divergence_joins_it():
    trainer = make_trainer(["trainer.objective=matching", "trainer.matching_steps=50%", "trainer.matching_weight=0.5"])
    trainer.set_run_length(4)
    real = torch.rand(8, 1, 32, 32) * 2 - 1
    steps = []
    for _ in range(4):
        metrics = trainer.train_step(real)
        steps.append((sorted(metrics), trainer.update_signals))
        trainer.apply_update()
    alone, joined = steps[0], steps[3]
    assert "matching" in alone[0] and "cdiv" not in alone[0] and alone[1] == ()  # no chains, no guard signal
    assert {"matching", "cdiv", "real", "fake"} <= set(joined[0]) and joined[1] == ("cdiv",)
    assert [bool("cdiv" in names) for names, _ in steps] == [False, False, True, True]
    assert trainer.work_per_step(8) == ("images", 8.0)  # counted in images: most steps draw no chain


def test_the_loss_while_sharpening_weighs_matching_beside_contrastive_divergence():
    trainer = make_trainer(["trainer.objective=matching", "trainer.matching_steps=1", "trainer.matching_weight=0.25",
                            "trainer.alpha=0"])
    real = torch.rand(8, 1, 32, 32) * 2 - 1
    alone = trainer.train_step(real)
    assert torch.equal(alone["loss"], alone["matching"])  # weight 1 while matching alone
    trainer.apply_update()
    metrics = trainer.train_step(real)
    assert torch.allclose(metrics["loss"], metrics["cdiv"] + 0.25 * metrics["matching"], atol=1e-6)


def test_a_cd_recipe_draws_chains_from_the_first_step():
    trainer = make_trainer([])
    assert trainer.sharpening and trainer.update_signals == ("cdiv",)
    assert "matching" not in trainer.train_step(torch.rand(8, 1, 32, 32) * 2 - 1)


@pytest.mark.parametrize(("setting", "message"), [("trainer.objective=flow", "trainer.objective"),
                                                  ("trainer.matching_decay_from=1", "trainer.matching_decay_from"),
                                                  ("trainer.coupling=best", "trainer.coupling"),
                                                  ("trainer.objective=matching --set trainer.matching_steps=50% "
                                                   "--set trainer.budget_minutes=5", "would not hold")])
def test_bad_matching_settings_are_refused_in_one_line(setting, message):
    with pytest.raises(ConfigError, match=message) as caught:
        genframe.recipe_config("ebm", overrides=setting.split(" --set "))
    assert "\n" not in str(caught.value)


def test_a_matching_run_trains_resumes_exactly_and_samples_on_mnist(data_dir, tmp_path):
    settings = ["trainer.objective=matching", "trainer.matching_steps=50%", "trainer.batch_size=16", "data.limit=64",
                "sampler.steps=3", "sampler.generate_steps=6", "sampler.noise=0", "sampler.grad_clip=100",
                "sampler.step_size=0.1", "buffer.size=32", "buffer.fresh_prob=1", "logging.log_every=1",
                "logging.sample_n=4", "logging.chain_n=0", 'logging.loggers=["jsonl"]', "trainer.coupling=ot"]
    straight = genframe.train("ebm", overrides=[*settings, "trainer.max_steps=8"], run_dir=tmp_path / "straight",
                              quiet=True)
    cut = genframe.train("ebm", overrides=[*settings, "trainer.max_steps=8", "trainer.max_minutes=1e-9"],
                         run_dir=tmp_path / "cut", quiet=True)
    assert straight.step == 8 and cut.step < 8
    resumed = genframe.train("ebm", overrides=["trainer.max_minutes=null"], resume=tmp_path / "cut", quiet=True)
    assert resumed.step == 8
    a, b = (genframe.load(tmp_path / name).model.state_dict() for name in ("straight", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    with_cdiv = [row["step"] for row in rows if "cdiv" in row and "matching" in row]
    assert with_cdiv == [5, 6, 7, 8]  # half the run matching alone, then sharpened
    images = genframe.load(tmp_path / "straight").sample(4).images
    assert images.shape == (4, 1, 32, 32) and torch.isfinite(images).all()


def test_a_resume_with_a_longer_run_keeps_sharpening_from_where_it_began(data_dir, tmp_path):
    settings = ["trainer.objective=matching", "trainer.matching_steps=50%", "trainer.batch_size=8", "data.limit=32",
                "sampler.steps=2", "sampler.generate_steps=2", "buffer.size=16", "buffer.fresh_prob=1",
                "logging.log_every=1", "logging.sample_n=0", "logging.chain_n=0", 'logging.loggers=["jsonl"]']
    genframe.train("ebm", overrides=[*settings, "trainer.max_steps=4"], run_dir=tmp_path / "run", quiet=True)
    genframe.train("ebm", overrides=["trainer.max_steps=12"], resume=tmp_path / "run", quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # half of 12 would be 6: the run sharpened from step 3 (half of its first 4) and goes on doing so
    assert [row["step"] for row in rows if "cdiv" in row and "matching" in row] == list(range(3, 13))

