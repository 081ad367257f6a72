"""The callback contract: state that survives an exact resume, and requests that act (stop, roll back,
veto), failures named in one line, settings validated with dotted paths, a fixed call order."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

import genframe
from genframe.cli.main import cli
from genframe.config.callbacks import chosen_callbacks
from genframe.testing import assert_states_equal
from genframe.training.listeners import CallbackWarning
from genframe.training.checkpoint import load_checkpoint
from genframe.training.rewind import DivergenceWarning

SMALL = ["trainer.device=cpu", "trainer.batch_size=16", "data.limit=160", "sampler.steps=3",
         "sampler.generate_steps=3", "sampler.impl=autograd", "buffer.size=32", "logging.sample_n=4",
         "logging.chain_n=0", 'logging.loggers=["jsonl"]', "logging.log_every=2", "trainer.val_batch_size=2000"]


class Every(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: int = 4


class LossSum(genframe.Callback):
    """Keeps a running sum of the loss and the steps it saw: state that must survive a resume."""

    name = "loss_sum"

    def __init__(self, settings, run):
        super().__init__(settings, run)
        self.total, self.seen = torch.zeros(()), []

    def on_after_update(self, run, control, metrics):
        self.total = self.total + metrics["loss"].detach()
        self.seen.append(run.step)

    def state_dict(self):
        return {"total": self.total, "seen": list(self.seen)}

    def load_state_dict(self, state):
        self.total, self.seen = state.get("total", torch.zeros(())), list(state.get("seen", []))


class StopAt(genframe.Callback):
    name, settings_class = "stop_at", Every

    def on_step_end(self, run, control):
        if run.step == self.settings.at:
            control.stop(f"enough at {run.step}")


class RollbackOnce(genframe.Callback):
    name, settings_class = "rollback_once", Every

    def on_step_end(self, run, control):
        if run.step == self.settings.at and run.rollbacks == 0:
            control.rollback("asked by a test", lr_factor=0.5)


class VetoAt(genframe.Callback):
    name, settings_class = "veto_at", Every

    def on_before_update(self, run, control, signals):
        assert set(signals) == {"cdiv"}
        if run.step + 1 == self.settings.at and run.rollbacks == 0:
            control.veto("vetoed by a test")


class Broken(genframe.Callback):
    name = "broken"

    def on_after_update(self, run, control, metrics):
        if run.step == 3:
            raise RuntimeError("boom")


class BrokenMidStep(genframe.Callback):
    name = "broken_mid_step"

    def on_before_update(self, run, control, signals):
        if run.step == 3:
            raise ValueError("bad signal")


class BrokenOnCheckpoint(genframe.Callback):
    name = "broken_on_checkpoint"

    def on_checkpoint(self, run, control, path):
        raise OSError("cannot copy")


class VetoTooLate(genframe.Callback):
    name = "veto_too_late"

    def on_after_update(self, run, control, metrics):
        control.veto("after the fact")


class StopOnSignal(genframe.Callback):
    name = "stop_on_signal"

    def on_before_update(self, run, control, signals):
        if run.step == 2:
            control.stop("signals say enough")


class FinishAtStart(genframe.Callback):
    name = "finish_at_start"

    def on_run_start(self, run, control):
        control.finish("too early")


class BrokenWatcher(Broken):
    name, observer = "broken_watcher", True


@pytest.fixture
def host():
    host = genframe.get_host()
    for callback in (LossSum, StopAt, RollbackOnce, VetoAt, Broken, BrokenWatcher, FinishAtStart,
                     BrokenMidStep, BrokenOnCheckpoint, VetoTooLate, StopOnSignal):
        host.registry.add("callback", callback.name, callback)
    return host


def train(run_dir, *extra, resume=None):
    overrides = [] if resume else SMALL
    return genframe.train("ebm", overrides=[*overrides, *extra], run_dir=None if resume else run_dir,
                          resume=resume, quiet=True)


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_callback_state_survives_an_exact_resume(host, tmp_path, data_dir):
    use = 'callbacks.use=["loss_sum"]'
    straight = train(tmp_path / "straight", use, "trainer.max_steps=6")
    train(tmp_path / "resumed", use, "trainer.max_steps=3")
    resumed = train(None, "trainer.max_steps=6", resume=tmp_path / "resumed")
    expected, actual = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert expected["callbacks"]["loss_sum"]["seen"] == [1, 2, 3, 4, 5, 6]
    assert_states_equal(expected["callbacks"], actual["callbacks"], "callbacks")
    assert_states_equal(expected["model"], actual["model"], "model")


def test_a_callback_stops_the_run_as_completed(host, tmp_path, data_dir):
    with pytest.warns(UserWarning, match="stopping at step 5: enough at 5"):
        result = train(tmp_path / "r", 'callbacks.use=["stop_at"]', "callbacks.stop_at.at=5", "trainer.max_steps=9")
    assert (result.status, result.step) == ("completed", 5)
    assert load_checkpoint(result.checkpoint)["loop"]["step"] == 5


def test_a_callback_rolls_back_with_a_lower_rate(host, tmp_path, data_dir):
    with pytest.warns(DivergenceWarning, match=r"asked by a test at step 5 \(epoch 1\); rolled back to step 3"):
        result = train(tmp_path / "r", 'callbacks.use=["rollback_once"]', "callbacks.rollback_once.at=5",
                       "trainer.max_steps=8", "trainer.checkpoint_every=3")
    state = load_checkpoint(result.checkpoint)
    assert (result.step, state["loop"]["rollbacks"]) == (8, 1)
    events = [r for r in records(tmp_path / "r") if r.get("event") == "rollback"]
    assert len(events) == 1 and events[0]["step"] == 3 and "asked by a test" in events[0]["reason"]
    assert state["trainer"]["lr_scale"] == 0.5


def test_a_veto_is_a_divergence_the_guard_rolls_back(host, tmp_path, data_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(tmp_path / "r", 'callbacks.use=["veto_at"]', "callbacks.veto_at.at=4", "trainer.max_steps=6",
                       "trainer.checkpoint_every=2")
    assert result.status == "completed" and result.step == 6
    messages = [str(w.message) for w in caught]
    assert any("vetoed by a test at step 4 (epoch 1); rolled back to step 2" in m for m in messages), messages


def test_an_acting_callback_that_fails_stops_the_run_with_a_checkpoint(host, tmp_path, data_dir):
    result = CliRunner().invoke(cli, ["run", "ebm", "--run-dir", str(tmp_path / "r"), "--quiet",
                                      *[f"--set={s}" for s in SMALL], '--set=callbacks.use=["broken"]',
                                      "--set=trainer.max_steps=6"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: callback 'broken' failed in on_after_update: RuntimeError: boom (at ")
    assert "test_callbacks.py:" in lines[-1]
    assert load_checkpoint(tmp_path / "r")["loop"]["step"] == 3


def test_a_watching_callback_that_fails_is_dropped_and_the_run_goes_on(host, tmp_path, data_dir):
    with pytest.warns(CallbackWarning, match="'broken_watcher' failed in on_after_update.*dropped"):
        result = train(tmp_path / "r", 'callbacks.use=["broken_watcher"]', "trainer.max_steps=6")
    assert (result.status, result.step) == ("completed", 6)


def test_callbacks_run_defaults_first_then_use_in_order(host):
    config = genframe.recipe_config("ebm", overrides=['callbacks.use=["stop_at", "loss_sum"]',
                                                      'callbacks.disable=["keep_best"]'])
    names = [name for name, _, _ in chosen_callbacks(config, host.registry)]
    assert names == ["divergence_guard", "evaluation", "stop_at", "loss_sum"]
    assert config.callbacks.table("stop_at") == {"at": 4}  # resolved settings are written back


@pytest.mark.parametrize("override, message", [
    ('callbacks.use=["los_sum"]', "callbacks.use: unknown callback 'los_sum'. Did you mean 'loss_sum'?"),
    ("callbacks.stop_at.at=3", "callbacks.stop_at: settings for a callback that is not on"),
    ('callbacks.disable=["ema"]', "callbacks.disable: 'ema' is not a default callback"),
    ("callbacks.divergence_guard.max_rollbacks=-1", "callbacks.divergence_guard.max_rollbacks: Input should be"),
    ("callbacks.evaluation.every_stpes=3", "callbacks.evaluation.every_stpes: unknown key (did you mean callbacks.evaluation.every_steps?)"),
])
def test_bad_callback_settings_are_one_line_errors(host, override, message):
    with pytest.raises(genframe.ConfigError) as error:
        genframe.recipe_config("ebm", overrides=[override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_keep_bests_record_reaches_the_checkpoint_of_the_step_it_evaluated(tmp_path, data_dir):
    # Epoch ends evaluate after the epoch's checkpoint: that checkpoint is written again with the new record,
    # or a resume would forget it and overwrite best.pt with worse weights.
    result = train(tmp_path / "r", "trainer.max_steps=10", "callbacks.evaluation.every_epochs=1",
                   "callbacks.evaluation.n=20", "callbacks.evaluation.steps=3")
    record = load_checkpoint(result.checkpoint)["callbacks"]["keep_best"]
    assert record["step"] is not None and record["step"] == load_checkpoint(tmp_path / "r/checkpoints/best.pt")["loop"]["step"]
    fds = [r["eval/fd"] for r in records(tmp_path / "r") if "eval/fd" in r]
    assert len(fds) == 1 and record["best"] == fds[0]


def test_a_rollback_or_finish_asked_outside_training_steps_is_one_clear_error(host, tmp_path, data_dir):
    with pytest.raises(genframe.CallbackError, match=r"asked to roll back or finish \(too early\) outside training"):
        train(tmp_path / "r", 'callbacks.use=["finish_at_start"]', "trainer.max_steps=4")
    assert load_checkpoint(tmp_path / "r")["loop"]["step"] == 0  # the run so far is kept


def test_a_failure_inside_an_update_keeps_the_last_good_checkpoint_not_a_half_done_step(host, tmp_path, data_dir):
    with pytest.raises(genframe.CallbackError, match=r"'broken_mid_step' failed in on_before_update: ValueError"):
        train(tmp_path / "r", 'callbacks.use=["broken_mid_step"]', "trainer.max_steps=6", "trainer.checkpoint_every=2")
    assert load_checkpoint(tmp_path / "r")["loop"]["step"] == 2  # the step-4 update never finished


def test_a_callback_that_fails_where_it_cannot_act_is_dropped_with_a_warning(host, tmp_path, data_dir):
    with pytest.warns(CallbackWarning, match="'broken_on_checkpoint' failed in on_checkpoint: OSError"):
        result = train(tmp_path / "r", 'callbacks.use=["broken_on_checkpoint"]', "trainer.max_steps=4")
    assert (result.status, result.step) == ("completed", 4)


def test_a_request_where_the_loop_does_not_act_on_it_is_one_clear_error(host, tmp_path, data_dir):
    with pytest.raises(genframe.CallbackError, match=r"asked to veto in on_after_update, where the loop does not act"):
        train(tmp_path / "r", 'callbacks.use=["veto_too_late"]', "trainer.max_steps=4")


def test_a_stop_asked_before_an_update_ends_the_run_after_that_step(host, tmp_path, data_dir):
    with pytest.warns(UserWarning, match="stopping at step 2: signals say enough"):
        result = train(tmp_path / "r", 'callbacks.use=["stop_on_signal"]', "trainer.max_steps=8")
    assert (result.status, result.step) == ("completed", 3)
