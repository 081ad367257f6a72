"""The collapse guard of short-run EBM training: |cdiv| beyond callbacks.divergence_guard.limit for
callbacks.divergence_guard.patience steps in a row rolls back; shorter spikes train on, and no checkpoint
is written while one is under way (bar the one a Ctrl-C writes), nor with the settle_gate callback while
the running cdiv slides, so a rollback returns to a state from before it; out of rollbacks, the run stops
or (callbacks.divergence_guard.out_of_rollbacks = finish) ends on its last good checkpoint."""

from __future__ import annotations

import json
import time

import genframe_ebm.trainer
import pytest
import torch
from conftest import TINY

import genframe
import genframe.training.loop
from genframe.contracts.errors import ConfigError, DivergenceError
from genframe.training.checkpoint import load_checkpoint
from genframe.training.rewind import DivergenceWarning

GUARD = "callbacks.divergence_guard"
SETTLE = ['callbacks.use=["settle_gate"]', "callbacks.settle_gate.settle=0.1"]


def recorded_checkpoints(monkeypatch) -> list[int]:
    """The step of every last.pt/best.pt the loop writes."""
    steps: list[int] = []
    real_save = genframe.training.loop.save_checkpoint

    def save(path, state):
        steps.append(state["loop"]["step"])
        return real_save(path, state)

    monkeypatch.setattr(genframe.training.loop, "save_checkpoint", save)
    return steps


def test_a_lasting_cdiv_collapse_stops_after_the_patience_and_no_checkpoint_is_written_during_it(
        data_dir, tmp_path, monkeypatch):
    saved = recorded_checkpoints(monkeypatch)
    run = tmp_path / "run"
    with pytest.raises(DivergenceError, match=r"cdiv -?[0-9.e-]+ beyond callbacks.divergence_guard.limit=1e-09 "
                                              r"for 3 steps in a row at step 3 "):
        genframe.train("ebm", overrides=[*TINY, f"{GUARD}.limit=1e-9", f"{GUARD}.patience=3",
                                         "trainer.checkpoint_every=1", f"{GUARD}.on_divergence=stop"],
                       run_dir=run, quiet=True)
    # Steps 1 and 2 trained (the patience), but their checkpoints were put off: the only one is step 0.
    assert saved == [0]
    assert load_checkpoint(run)["loop"]["step"] == 0


def test_a_one_step_cdiv_spike_trains_on_and_only_delays_the_checkpoint(data_dir, tmp_path, monkeypatch):
    real_loss, calls = genframe_ebm.trainer.cd_loss, {"n": 0}

    def spikes_at_step_2(real_scores, fake_scores, alpha):
        calls["n"] += 1
        parts = real_loss(real_scores, fake_scores, alpha)
        if calls["n"] == 2:
            parts["cdiv"] = parts["cdiv"] - 50.0  # what a one-step spike of a healthy run looks like
        return parts

    monkeypatch.setattr(genframe_ebm.trainer, "cd_loss", spikes_at_step_2)
    saved = recorded_checkpoints(monkeypatch)
    result = genframe.train("ebm", overrides=[*TINY, f"{GUARD}.limit=1", f"{GUARD}.patience=3",
                                              "trainer.checkpoint_every=2"], run_dir=tmp_path / "run", quiet=True)
    assert result.status == "completed" and result.step == 6
    assert saved == [0, 3, 4, 6]  # step 2's checkpoint waited one step for the spike to pass
    assert load_checkpoint(tmp_path / "run")["loop"]["rollbacks"] == 0


def test_the_time_of_steps_a_rollback_throws_away_still_counts_as_training_time(data_dir, tmp_path, monkeypatch):
    # train_minutes is what a recipe's "60 minutes" is measured by: work redone after a rollback is not free.
    real_step, real_clock, calls = genframe_ebm.trainer.CDTrainer.train_step, time.perf_counter, {"n": 0, "late": 0.0}

    def slow_then_diverges(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # a step that takes 1000 s of the clock, then diverges
            calls["late"] = 1000.0
            raise DivergenceError("non-finite loss (nan)")
        return real_step(self, batch)

    monkeypatch.setattr(genframe_ebm.trainer.CDTrainer, "train_step", slow_then_diverges)
    monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + calls["late"])
    with pytest.warns(DivergenceWarning, match="rolled back to step 2"):
        genframe.train("ebm", overrides=[*TINY, "trainer.checkpoint_every=2"], run_dir=tmp_path / "run", quiet=True)
    assert 1000 <= load_checkpoint(tmp_path / "run")["loop"]["train_seconds"] < 1100


def test_a_streak_under_way_survives_a_stop_and_resume(data_dir, tmp_path):
    # Every step is beyond a limit of 1e-9: a run stopped after 3 steps and resumed diverges at step 5,
    # exactly where a straight run would (patience 5), not 5 steps after the resume.
    run, settings = tmp_path / "run", [*TINY, f"{GUARD}.limit=1e-9", f"{GUARD}.patience=5",
                                       f"{GUARD}.on_divergence=stop"]
    first = genframe.train("ebm", overrides=[*settings, "trainer.max_steps=3"], run_dir=run, quiet=True)
    assert first.status == "completed" and load_checkpoint(run)["callbacks"]["divergence_guard"]["streak"] == 3
    with pytest.raises(DivergenceError, match=r"for 5 steps in a row at step 5 "):
        genframe.train("ebm", overrides=["trainer.max_steps=6"], resume=run, quiet=True)


def test_a_patience_without_a_limit_is_a_one_line_error(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"^invalid config: callbacks.divergence_guard: .*patience=25 has no "
                                          r"effect without a limit; set limit or drop patience$"):
        genframe.train("ebm", overrides=[*TINY, f"{GUARD}.patience=25"], run_dir=tmp_path / "run", quiet=True)


@pytest.mark.slow
def test_a_slide_of_the_running_cdiv_puts_off_the_checkpoint_though_no_step_is_beyond_the_limit(
        data_dir, tmp_path, monkeypatch):
    # From step 4 on every batch's cdiv is 0.5 lower: inside the guard's limit = 1, so no streak and no
    # rollback, but the running mean (about 50 steps) passes settle = 0.1 after a dozen such steps, and from
    # then on no checkpoint is written: a later rollback would return to before the slide.
    real_loss, calls = genframe_ebm.trainer.cd_loss, {"n": 0}

    def slides_from_step_4(real_scores, fake_scores, alpha):
        calls["n"] += 1
        parts = real_loss(real_scores, fake_scores, alpha)
        if calls["n"] >= 4:
            parts["cdiv"] = parts["cdiv"].detach() * 0 - 0.5
        return parts

    monkeypatch.setattr(genframe_ebm.trainer, "cd_loss", slides_from_step_4)
    settings = [*TINY, "trainer.max_steps=24", f"{GUARD}.limit=1", f"{GUARD}.patience=3",
                "trainer.checkpoint_every=2"]
    saved = recorded_checkpoints(monkeypatch)
    genframe.train("ebm", overrides=[*settings, *SETTLE], run_dir=tmp_path / "gated", quiet=True)
    gated = saved.copy()
    saved.clear()
    calls["n"] = 0
    genframe.train("ebm", overrides=settings, run_dir=tmp_path / "plain", quiet=True)
    assert saved == [0, *range(2, 25, 2)]  # without settle_gate: every checkpoint, the slide's included
    # With it: steps 2 to 14 (the running mean reaches -0.1 at the 12th step of the slide, step 15), then
    # none until the run's own end (written whatever the state: the user's work is kept).
    assert gated == [0, 2, 4, 6, 8, 10, 12, 14, 24]
    assert load_checkpoint(tmp_path / "gated")["callbacks"]["settle_gate"]["mean"] < -0.1
    # The running mean is part of the checkpoint: stopped mid-slide (step 18, its end-of-run checkpoint)
    # and resumed, the run still puts its checkpoints off, where one starting the mean afresh would not.
    saved.clear()
    calls["n"] = 0
    genframe.train("ebm", overrides=[*settings, *SETTLE, "trainer.max_steps=18"],
                   run_dir=tmp_path / "stopped", quiet=True)
    genframe.train("ebm", overrides=["trainer.max_steps=24"], resume=tmp_path / "stopped", quiet=True)
    assert saved == [0, 2, 4, 6, 8, 10, 12, 14, 18, 24]
    # Putting checkpoints off changes no training step: a run without rollbacks trains the same with it.
    gated_weights, plain_weights = (load_checkpoint(tmp_path / name)["model"] for name in ("gated", "plain"))
    assert all(torch.equal(gated_weights[k], plain_weights[k]) for k in plain_weights)


def test_a_settle_at_or_beyond_the_limit_or_without_one_is_a_one_line_error(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"callbacks.settle_gate: settle=1 is not below "
                                          r"callbacks.divergence_guard.limit=1"):
        genframe.train("ebm", overrides=[*TINY, f"{GUARD}.limit=1", *SETTLE[:1], "callbacks.settle_gate.settle=1"],
                       run_dir=tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()  # refused when the config is resolved, before the run directory
    with pytest.raises(ConfigError, match=r"callbacks.settle_gate: settle=0.1 guards the rollback target of "
                                          r"callbacks.divergence_guard.limit, which is off"):
        genframe.train("ebm", overrides=[*TINY, *SETTLE], run_dir=tmp_path / "run2", quiet=True)
    with pytest.raises(ConfigError, match=r"callbacks.settle_gate: settle=0.1 guards"):  # `config show` checks it too
        genframe.recipe_config("ebm", overrides=SETTLE)


def test_finish_without_rollbacks_is_a_one_line_error(data_dir, tmp_path):
    with pytest.raises(ConfigError, match=r'^invalid config: callbacks.divergence_guard: .*out_of_rollbacks="finish" '
                                          r'acts after the last rollback, and on_divergence="stop" makes none; '):
        genframe.train("ebm", overrides=[*TINY, f"{GUARD}.on_divergence=stop", f"{GUARD}.out_of_rollbacks=finish"],
                       run_dir=tmp_path / "run", quiet=True)


@pytest.mark.slow
def test_out_of_rollbacks_finish_ends_the_run_on_the_last_good_checkpoint_and_evaluates_it(
        data_dir, tmp_path, monkeypatch):
    real_step = genframe_ebm.trainer.CDTrainer.train_step

    def diverges_from_step_4(self, batch):
        if self.schedule.steps_taken >= 3:  # every step after the checkpoint at step 2... and every retry of it
            raise DivergenceError("non-finite loss (nan)")
        return real_step(self, batch)

    monkeypatch.setattr(genframe_ebm.trainer.CDTrainer, "train_step", diverges_from_step_4)
    run = tmp_path / "run"
    settings = [*TINY, "trainer.checkpoint_every=2", f"{GUARD}.max_rollbacks=2", "callbacks.evaluation.every_steps=100",
                "callbacks.evaluation.n=16", "callbacks.evaluation.steps=3"]
    with pytest.raises(DivergenceError, match="after 2 rollback"):  # the default: stop, exit status 3
        genframe.train("ebm", overrides=settings, run_dir=tmp_path / "stopped", quiet=True)
    with pytest.warns(DivergenceWarning, match=r"rolled back to step 2 and finished there, out of rollbacks"):
        result = genframe.train("ebm", overrides=[*settings, f"{GUARD}.out_of_rollbacks=finish"], run_dir=run,
                                quiet=True)
    assert result.status == "completed" and result.step == 2
    state = load_checkpoint(run)
    assert state["loop"]["step"] == 2 and state["loop"]["rollbacks"] == 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "finished there" in records[-2]["reason"] and records[-2]["step"] == 2
    assert records[-1]["step"] == 2 and "eval/fd" in records[-1]  # the result's own evaluation (none was due)
    assert all(r["step"] <= 2 for r in records)  # the thrown-away steps' records are gone

    # --resume trains on from the result (the user stepped in): with max_rollbacks afresh and the rate
    # the rollbacks lowered.
    monkeypatch.setattr(genframe_ebm.trainer.CDTrainer, "train_step", real_step)
    resumed = genframe.train("ebm", resume=run, quiet=True)
    assert resumed.status == "completed" and resumed.step == 6
    assert load_checkpoint(run)["trainer"]["lr_scale"] == 0.25
