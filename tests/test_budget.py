"""trainer.budget_minutes: the run times its first steps, fixes its length, records it, and every schedule
written as a share of the run follows that length; a resume keeps it, an explicit max_steps overrides it.

The loop's clock is a fake one here (each step takes ``SECONDS`` exactly), so the lengths are the same on
every CPU."""

from __future__ import annotations

import math
import time as real_time

import pytest
import torch
from conftest import TINY

import genframe
import genframe.training.loop
from genframe.contracts.errors import ConfigError
from genframe.training.checkpoint import load_checkpoint
from genframe.using.plot import read_metrics
from genframe.util.shares import steps_of

SECONDS = 1 / 32  # a step, on the fake clock
BUDGET = [*TINY, "trainer.max_steps=null", "trainer.epochs=50", "trainer.budget_minutes=0.025",
          "trainer.budget_probe_steps=12", "trainer.lr=0.001", "trainer.lr_decay_steps=100%", "trainer.lr_min=0.0001",
          "logging.log_every=1", "logging.sample_every=50%", "logging.sample_n=4", "logging.chain_n=0"]
LENGTH = 48  # 1.5 s at 1/32 s a step


class FakeClock:
    """``time`` for the loop: perf_counter moves ``step`` a call (a step is timed from one call to the next),
    the rest is real."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now

    def __getattr__(self, name):
        return getattr(real_time, name)


@pytest.fixture
def clock(monkeypatch):
    def set_speed(seconds_per_step: float) -> None:
        monkeypatch.setattr(genframe.training.loop, "time", FakeClock(seconds_per_step))
    return set_speed


def cosine(step: int, total: int) -> float:
    return 1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))


@pytest.mark.slow
def test_a_budget_fixes_the_length_from_the_first_steps_and_the_schedules_follow_it(data_dir, tmp_path, clock, capfd):
    clock(SECONDS)
    run = tmp_path / "run"
    result = genframe.train("ebm", overrides=BUDGET, run_dir=run, quiet=True)
    assert result.step == LENGTH and result.status == "completed"
    loop = load_checkpoint(run)["loop"]
    assert loop["budget_steps"] == LENGTH and loop["budget_seconds_per_step"] == SECONDS
    said = capfd.readouterr().err
    assert f"trainer.budget_minutes=0.025: 0.03125 s a step over steps 4-12 here, so {LENGTH} steps in all" in said
    rates = {row["step"]: row["lr"] for row in read_metrics(run) if "lr" in row}
    assert rates[12] == pytest.approx(1e-3)  # before the length was known: lr
    assert rates[LENGTH] == pytest.approx(cosine(LENGTH - 1, LENGTH), rel=1e-6)  # ends at lr_min with the run
    assert rates[30] == pytest.approx(cosine(29, LENGTH), rel=1e-6)
    grids = sorted(p.name for p in (run / "samples").glob("step*_samples.png"))
    assert grids == [f"step{LENGTH // 2:07d}_samples.png", f"step{LENGTH:07d}_samples.png"]  # "50%" of the run


@pytest.mark.slow
def test_a_resume_keeps_the_recorded_length_on_a_slower_machine_and_ends_as_a_straight_run(data_dir, tmp_path, clock):
    clock(SECONDS)
    genframe.train("ebm", overrides=BUDGET, run_dir=tmp_path / "straight", quiet=True)
    clock(SECONDS)
    cut = genframe.train("ebm", overrides=[*BUDGET, "trainer.max_minutes=0.0125"], run_dir=tmp_path / "cut",
                         quiet=True)  # the hard stop, half-way, after the length was fixed
    assert cut.step == LENGTH // 2 and load_checkpoint(tmp_path / "cut")["loop"]["budget_steps"] == LENGTH
    clock(4 * SECONDS)  # four times slower now: the run keeps the length it recorded
    resumed = genframe.train("ebm", overrides=["trainer.max_minutes=null"], resume=tmp_path / "cut", quiet=True)
    assert resumed.step == LENGTH
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "cut")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name


@pytest.mark.slow
def test_an_explicit_max_steps_overrides_the_budget(data_dir, tmp_path, clock, capfd):
    clock(SECONDS)
    result = genframe.train("ebm", overrides=[*BUDGET, "trainer.max_steps=20"], run_dir=tmp_path / "run", quiet=True)
    assert result.step == 20 and "budget_steps" not in load_checkpoint(tmp_path / "run")["loop"]
    said = capfd.readouterr().err
    assert "trainer.max_steps=20 sets the run's length; the recipe's trainer.budget_minutes=0.025 is not used" in said
    assert "s a step over steps" not in said  # no timing, no length fixed from it
    rates = {row["step"]: row["lr"] for row in read_metrics(tmp_path / "run") if "lr" in row}
    assert rates[20] == pytest.approx(cosine(19, 20), rel=1e-6)  # "100%" of the 20 steps


def test_shares_of_the_run_are_checked_and_resolved():
    assert steps_of("25%", 48) == 12 and steps_of(7, 48) == 7 and steps_of("0.5%", 48) == 1
    assert steps_of("100%", None) is None and steps_of(None, 48) is None
    config = genframe.recipe_config("ebm", overrides=["trainer.lr_decay_steps=100%", "logging.sample_every=12.5%"])
    assert config.trainer.lr_decay_steps == "100%" and config.logging.sample_every == "12.5%"
    for bad in ("150%", "0%", "half", "-3"):
        with pytest.raises(ConfigError, match="trainer.lr_decay_steps") as refused:
            genframe.recipe_config("ebm", overrides=[f"trainer.lr_decay_steps={bad}"])
        assert "above 0% and at most 100%" in str(refused.value)  # 0% is refused, so the message does not offer it


@pytest.mark.slow
def test_a_larger_budget_on_resume_trains_on_at_the_recorded_speed(data_dir, tmp_path, clock, capfd):
    clock(SECONDS)
    run = tmp_path / "run"
    genframe.train("ebm", overrides=BUDGET, run_dir=run, quiet=True)
    with pytest.raises(genframe.RunError, match="or trainer.budget_minutes=M"):  # finished: says how to go on
        genframe.train("ebm", resume=run, quiet=True)
    clock(4 * SECONDS)
    result = genframe.train("ebm", overrides=["trainer.budget_minutes=0.05"], resume=run, quiet=True)
    assert result.step == 2 * LENGTH  # 1.5 more seconds at the recorded 1/32 s a step, not at today's speed
    assert f"trainer.budget_minutes=0.05 (was 0.025): {2 * LENGTH} steps in all" in capfd.readouterr().err


@pytest.mark.slow
def test_a_run_shorter_than_the_probe_knows_its_length_from_the_start(data_dir, tmp_path, clock, capfd):
    clock(SECONDS)
    run = tmp_path / "run"  # 160 images, batch 16: 10 steps an epoch, 20 in all, under the probe's 40
    result = genframe.train("ebm", overrides=[*BUDGET, "data.limit=160", "trainer.epochs=2",
                                               "trainer.budget_probe_steps=40"], run_dir=run, quiet=True)
    assert result.step == 20 and "trainer.budget_minutes" not in capfd.readouterr().err
    grids = sorted(p.name for p in (run / "samples").glob("step*_samples.png"))
    assert grids == ["step0000010_samples.png", "step0000020_samples.png"]  # "50%" of the 20 steps


@pytest.mark.slow
def test_a_rollback_while_timing_times_afresh_and_a_rollback_after_keeps_the_length(data_dir, tmp_path, clock,
                                                                                     monkeypatch):
    from genframe_ebm.trainer import CDTrainer

    from genframe.contracts.errors import DivergenceError

    real_step, calls = CDTrainer.train_step, {"n": 0}

    def diverges_twice(self, batch):
        calls["n"] += 1
        if calls["n"] in (9, 31):  # step 9, while timing (back to step 8); and step 30, after the length is fixed
            raise DivergenceError("non-finite loss (nan)")
        return real_step(self, batch)

    monkeypatch.setattr(CDTrainer, "train_step", diverges_twice)
    clock(SECONDS)
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="rolled back"):
        result = genframe.train("ebm", overrides=[*BUDGET, "trainer.checkpoint_every=4"], run_dir=run, quiet=True)
    loop = load_checkpoint(run)["loop"]
    assert loop["rollbacks"] == 2 and loop["budget_seconds_per_step"] == SECONDS  # the thrown-away steps untimed
    assert result.step == loop["budget_steps"] < LENGTH  # the redone steps' time was spent: fewer steps are left
