"""genframe.RateSchedule: the rate a trainer sets each step, its rollback factor and its saved state."""

from __future__ import annotations

import pytest
import torch

import genframe
from genframe import RateSchedule, cosine_rate, rate_schedule_problem


def schedule(**settings) -> RateSchedule:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    return RateSchedule(optimizer, **{"lr": 1e-3, "lr_min": 1e-4, "decay_steps": 6, "warmup_steps": 2, **settings})


def test_the_rate_follows_the_steps_taken_and_every_cut_multiplies_it():
    ahead = schedule()
    for step in range(4):
        assert ahead.apply() == ahead.optimizer.param_groups[0]["lr"] == cosine_rate(step, 1e-3, 1e-4, 6, 2)
        ahead.advance()
    assert ahead.scale(0.5) == [pytest.approx(0.5 * cosine_rate(4, 1e-3, 1e-4, 6, 2))]
    assert ahead.optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * cosine_rate(4, 1e-3, 1e-4, 6, 2))
    ahead.scale(0.5)
    ahead.advance()
    assert ahead.rate() == pytest.approx(0.25 * cosine_rate(5, 1e-3, 1e-4, 6, 2))  # the cuts outlast the step


def test_a_loaded_state_continues_where_it_was_saved_and_sets_the_optimizer():
    saved = schedule()
    for _ in range(3):
        saved.advance()
    saved.scale(0.5)
    resumed = schedule()
    resumed.load_state_dict(saved.state_dict())
    assert resumed.state_dict() == {"steps_taken": 3, "lr_scale": 0.5}
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(saved.rate())
    fresh = schedule()
    fresh.load_state_dict({})  # a checkpoint from before schedules: the start
    assert fresh.state_dict() == {"steps_taken": 0, "lr_scale": 1.0}


def test_varies_only_where_the_rate_is_not_the_configured_one():
    assert not schedule(decay_steps=None, warmup_steps=0).varies
    assert schedule(decay_steps=None, warmup_steps=3).varies and schedule(warmup_steps=0).varies
    constant = schedule(decay_steps=None, warmup_steps=0)
    constant.scale(0.5)
    assert constant.varies


def test_a_schedule_that_cannot_run_is_named():
    assert rate_schedule_problem(1e-3, 0.0, 10, 2) is None and rate_schedule_problem(1e-3, 1e-2, None) is None
    assert "trainer.lr_min=0.01 is not below trainer.lr=0.001" in rate_schedule_problem(1e-3, 1e-2, 10)
    assert "trainer.warmup_steps=10 is not below trainer.lr_decay_steps=10" in rate_schedule_problem(1e-3, 0.0, 10, 10)
    assert genframe.RateSchedule is RateSchedule
