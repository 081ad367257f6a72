"""The learning-rate schedule the flow recipe fits to its budget: a linear warm-up, then a half cosine that
ends at the last step; its values by hand, the rates training really used, and a resume that continues it."""

from __future__ import annotations

import math

import pytest
import torch

import genframe
from genframe.contracts.errors import ConfigError
from genframe.training.checkpoint import load_checkpoint
from genframe.training.schedules import cosine_rate
from genframe.using.plot import read_metrics

TINY = ["trainer.device=cpu", "trainer.batch_size=8", "data.limit=32", "model.channels=[8,16]", "model.time_dim=16",
        "sampler.nfe=2", "logging.sample_n=4", "logging.chain_n=0", 'logging.loggers=["jsonl"]',
        "logging.log_every=1", "logging.sample_every=1000"]
SCHEDULE = ["trainer.lr=0.001", "trainer.warmup_steps=2", "trainer.lr_decay_steps=6", "trainer.lr_min=0.0001"]


def by_hand(step: int) -> float:
    """Warm-up 0.5e-3, 1e-3; then 1e-3 to 1e-4 along a half cosine over the 4 steps left; then 1e-4."""
    if step < 2:
        return 1e-3 * (step + 1) / 2
    return 1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * min(step - 2, 4) / 4))


def test_the_schedule_warms_up_then_decays_to_its_floor():
    assert [cosine_rate(s, 1e-3, 1e-4, 6, 2) for s in range(9)] == pytest.approx([by_hand(s) for s in range(9)])
    assert cosine_rate(5, 1e-3, 0.0, None, 10) == pytest.approx(6e-4)  # warm-up, then constant
    assert cosine_rate(50, 1e-3, 0.0, None, 10) == 1e-3
    assert cosine_rate(3, 1e-3, 0.0, 4) == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))  # no warm-up


@pytest.mark.slow  # three short runs with their end-of-run pictures
def test_flow_training_uses_and_logs_the_scheduled_rate_and_a_resume_continues_it(data_dir, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    genframe.train("flow", overrides=[*TINY, *SCHEDULE, "trainer.max_steps=7"], run_dir=whole, quiet=True)
    rows = [row for row in read_metrics(whole) if "lr" in row]
    assert [row["lr"] for row in rows] == pytest.approx([by_hand(s) for s in range(7)], rel=1e-6)
    genframe.train("flow", overrides=[*TINY, *SCHEDULE, "trainer.max_steps=3"], run_dir=cut, quiet=True)
    genframe.train("flow", overrides=["trainer.max_steps=7"], resume=cut, quiet=True)
    uninterrupted, resumed = load_checkpoint(whole)["trainer"], load_checkpoint(cut)["trainer"]
    assert resumed["steps_taken"] == uninterrupted["steps_taken"] == 7
    for name, weight in uninterrupted["model"].items():
        assert torch.equal(weight, resumed["model"][name]), name


def test_flow_training_keeps_a_constant_rate_by_default_and_logs_none(data_dir, tmp_path):
    genframe.train("flow", overrides=[*TINY, "trainer.max_steps=2"], run_dir=tmp_path / "run", quiet=True)
    assert not any("lr" in row for row in read_metrics(tmp_path / "run"))
    state = load_checkpoint(tmp_path / "run")["trainer"]
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-4)


@pytest.mark.parametrize(("settings", "message"), [
    (["trainer.lr_decay_steps=4", "trainer.lr_min=0.01"], r"trainer.lr_min=0.01 is not below trainer.lr=0.0002"),
    (["trainer.lr_decay_steps=4", "trainer.warmup_steps=4"], r"trainer.warmup_steps=4 is not below "
                                                             r"trainer.lr_decay_steps=4"),
])
def test_a_schedule_that_cannot_run_is_a_clear_error(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        genframe.train("flow", overrides=[*TINY, *settings], run_dir=tmp_path / "run", quiet=True)


def test_a_rollbacks_rate_cut_holds_under_the_schedule_and_survives_a_resume():
    from genframe_flow.config import FlowConfig
    from genframe_flow.trainer import FlowTrainer
    from genframe_flow.unet import UNet

    def trainer(**settings) -> FlowTrainer:
        config = FlowConfig(trainer={"lr": 1e-3, **settings})
        return FlowTrainer(UNet(1, (8, 16), 16), config, torch.device("cpu"))

    for settings, rate in (({}, lambda step: 1e-3), ({"warmup_steps": 2, "lr_decay_steps": 6, "lr_min": 1e-4}, by_hand)):
        first = trainer(**settings)
        assert first.scale_learning_rate(0.5) == [pytest.approx(0.5 * rate(0))]
        batch = torch.zeros(2, 1, 8, 8)
        for _ in range(3):
            metrics = first.train_step(batch)
            first.apply_update()
        assert metrics["lr"] == pytest.approx(0.5 * rate(2))  # the step just taken
        assert first.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * rate(2))
        second = trainer(**settings)
        second.load_state_dict(first.state_dict())
        assert second.schedule.rate() == pytest.approx(0.5 * rate(3))
