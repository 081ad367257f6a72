"""The EBM trainer's cosine learning-rate decay: its values, its log, and how it composes with a
divergence rollback and survives a resume."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY

import genframe
from genframe.contracts.errors import ConfigError, DivergenceError
from genframe.training.checkpoint import load_checkpoint
from genframe.training.rewind import DivergenceWarning
from genframe.using.plot import read_metrics

DECAY = [*TINY, "trainer.lr=0.001", "trainer.lr_decay_steps=4", "trainer.lr_min=0.0001"]


def rate(step: int) -> float:
    """The schedule written out by hand: 1e-3 to 1e-4 along a half cosine over 4 steps."""
    return 1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * min(step, 4) / 4))


def test_training_follows_the_cosine_schedule_and_logs_the_rate(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*DECAY, "logging.log_every=1"], run_dir=run, quiet=True)
    rates = [row["lr"] for row in read_metrics(run)]
    assert rates == pytest.approx([rate(step) for step in range(6)], rel=1e-6)  # step k uses rate(k - 1)
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(1e-4)  # from lr, then flat at lr_min
    assert load_checkpoint(run)["trainer"]["steps_taken"] == 6


def test_a_constant_rate_is_the_default_and_is_not_logged(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=TINY, run_dir=run, quiet=True)
    assert all("lr" not in row for row in read_metrics(run))
    assert load_checkpoint(run)["trainer"]["optimizer"]["param_groups"][0]["lr"] == 1e-4


def test_resume_continues_the_schedule_exactly(data_dir, tmp_path):
    genframe.train("ebm", overrides=DECAY, run_dir=tmp_path / "straight", quiet=True)
    genframe.train("ebm", overrides=[*DECAY, "trainer.max_steps=3"], run_dir=tmp_path / "resumed", quiet=True)
    genframe.train("ebm", overrides=["trainer.max_steps=6"], resume=tmp_path / "resumed", quiet=True)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    for name, tensor in a["model"].items():  # a resume that restarted the schedule would train at 1e-3 again
        assert torch.equal(tensor, b["model"][name]), name


def test_a_rollback_halves_the_scheduled_rate_from_then_on(data_dir, tmp_path, monkeypatch):
    from genframe_ebm.trainer import CDTrainer

    real_step, calls = CDTrainer.train_step, {"n": 0}

    def diverges_once(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # the third update blows up, once: back to the step-2 checkpoint
            raise DivergenceError("non-finite loss (nan)")
        return real_step(self, batch)

    monkeypatch.setattr(CDTrainer, "train_step", diverges_once)
    run = tmp_path / "run"
    with pytest.warns(DivergenceWarning):
        genframe.train("ebm", overrides=[*DECAY, "trainer.checkpoint_every=2", "logging.log_every=1"],
                       run_dir=run, quiet=True)
    rates = [row["lr"] for row in read_metrics(run) if "lr" in row]
    # Steps 1-2 at the schedule; after the rollback steps 3-6 at half of it (the schedule keeps going).
    assert rates == pytest.approx([rate(0), rate(1), *(0.5 * rate(k) for k in range(2, 6))], rel=1e-6)
    state = load_checkpoint(run)["trainer"]
    assert state["lr_scale"] == 0.5 and state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.5 * rate(6))


def test_lr_min_not_below_lr_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer.lr_min=0.001 is not below trainer.lr=0.001"):
        genframe.train("ebm", overrides=[*TINY, "trainer.lr=0.001", "trainer.lr_decay_steps=4",
                                         "trainer.lr_min=0.001"], run_dir=tmp_path / "run", quiet=True)
