"""One way to hear a run: loggers and callbacks hear the same points with the same signatures; a logger
watches and cannot act; the core owns the optimizer step (a veto means no update, an old trainer that
steps itself is never stepped twice)."""

from __future__ import annotations

import inspect
import warnings

import genframe_ebm.trainer
import pytest
import torch
from conftest import TINY

import genframe
from genframe.contracts.listeners import POINTS, WATCH_ONLY, Control, Listener
from genframe.plugins.host import PluginWarning, get_host
from genframe.training.checkpoint import load_checkpoint

QUIET = [*TINY, "trainer.max_steps=3", "logging.chain_n=0", "logging.sample_n=4"]


def test_loggers_and_callbacks_hear_the_same_points_with_one_signature_shape():
    assert issubclass(genframe.Logger, Listener) and issubclass(genframe.Callback, Listener)
    for point in POINTS:
        params = list(inspect.signature(getattr(Listener, point)).parameters)
        assert params[:3] == ["self", "run", "control"], point
        for cls in (genframe.Logger, genframe.Callback):
            assert getattr(cls, point) is getattr(Listener, point)  # neither redefines a point
    assert set(POINTS) >= {"on_run_start", "on_log", "on_checkpoint", "on_rollback", "on_run_end"}
    assert WATCH_ONLY <= set(POINTS)


def test_a_watching_control_refuses_every_request():
    control = Control(watching=True)
    for ask in (lambda: control.stop("x"), lambda: control.report({"a": 1.0}), lambda: control.save_copy("b.pt")):
        with pytest.raises(RuntimeError, match="can only watch"):
            ask()
    assert control.requests() == set()


class Recorder(genframe.Logger):
    heard: list[tuple[str, int]] = []

    def on_run_start(self, run, control):
        self.heard.append(("start", run.step))

    def on_log(self, run, control, metrics, images):
        if "loss" in metrics:
            self.heard.append(("log", run.step))

    def on_checkpoint(self, run, control, path):
        self.heard.append(("checkpoint", run.step))

    def on_run_end(self, run, control, status):
        self.heard.append((status, run.step))


class Meddler(genframe.Logger):
    def on_log(self, run, control, metrics, images):
        control.stop("a logger must not end a run")


def register(name, cls):
    host = get_host()
    host.registry.current_plugin = "tests"
    host.registry.add("logger", name, cls)
    host.registry.current_plugin = "?"


def test_a_logger_hears_the_run_and_one_that_tries_to_act_is_dropped_with_a_warning(data_dir, tmp_path):
    register("recorder_l", Recorder)
    register("meddler_l", Meddler)
    Recorder.heard = []
    with pytest.warns(PluginWarning, match=r"logger 'meddler_l' from tests raised in on_log: RuntimeError: asked to "
                                           r"stop at a point where it can only watch"):
        result = genframe.train("ebm", overrides=[*QUIET, "logging.log_every=1",
                                                  'logging.loggers=["meddler_l", "recorder_l"]'],
                                run_dir=tmp_path / "run", quiet=True)
    assert result.step == 3 and result.stopped is None  # the run went on to its last step
    assert Recorder.heard[0] == ("start", 0) and Recorder.heard[-1] == ("completed", 3)
    assert [step for what, step in Recorder.heard if what == "log"] == [1, 2, 3]
    assert ("checkpoint", 0) in Recorder.heard and ("checkpoint", 3) in Recorder.heard


class Veto(genframe.Callback):
    name = "veto_all"

    def on_before_update(self, run, control, signals):
        assert set(signals) == {"cdiv"}  # the trainer's update_signals, as numbers
        control.veto(f"cdiv {signals['cdiv']:.3g} refused")


def test_a_vetoed_step_is_never_applied_and_its_gradients_are_dropped(data_dir, tmp_path, monkeypatch):
    calls = {"apply": 0, "discard": 0}
    trainer = genframe_ebm.trainer.CDTrainer
    real_apply, real_discard = trainer.apply_update, trainer.discard_update
    monkeypatch.setattr(trainer, "apply_update", lambda self: (calls.__setitem__("apply", calls["apply"] + 1),
                                                               real_apply(self))[1])
    monkeypatch.setattr(trainer, "discard_update", lambda self: (calls.__setitem__("discard", calls["discard"] + 1),
                                                                 real_discard(self))[1])
    host = get_host()
    host.registry.current_plugin = "tests"
    host.registry.add("callback", "veto_all", Veto)
    host.registry.current_plugin = "?"
    with pytest.raises(genframe.DivergenceError, match=r"cdiv .* refused at step 1"):
        genframe.train("ebm", overrides=[*QUIET, 'callbacks.use=["veto_all"]', 'logging.loggers=["jsonl"]'],
                       run_dir=tmp_path / "run", quiet=True)
    # the guard rolled back and retried (each retry vetoed too) before the run gave up
    assert calls["apply"] == 0 and calls["discard"] >= 1


def test_a_trainer_that_steps_itself_is_stepped_once_per_step_with_one_deprecation(data_dir, tmp_path, monkeypatch):
    trainer = genframe_ebm.trainer.CDTrainer
    real_step = trainer.train_step

    def old_style(self, batch):  # genframe 0.1: the trainer stepped its optimizer inside train_step
        metrics = real_step(self, batch)
        trainer.apply_update(self)
        return metrics

    monkeypatch.setattr(trainer, "train_step", old_style)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = genframe.train("ebm", overrides=[*QUIET, 'logging.loggers=["jsonl"]'], run_dir=tmp_path / "run",
                                quiet=True)
    about = [str(w.message) for w in caught if issubclass(w.category, genframe.GenframeDeprecationWarning)
             and "steps the optimizer itself" in str(w.message)]
    assert len(about) == 1 and "apply_update" in about[0]
    assert load_checkpoint(result.checkpoint)["trainer"]["steps_taken"] == 3  # once per step, not twice


def test_an_old_trainer_that_skips_its_first_step_is_still_never_stepped_twice(data_dir, tmp_path, monkeypatch):
    # e.g. a gradient scaler skipping a step on inf gradients: that step must not be taken by the core either
    trainer = genframe_ebm.trainer.CDTrainer
    real_step, calls = trainer.train_step, {"n": 0}

    def old_style_skipping_the_first(self, batch):
        metrics = real_step(self, batch)
        calls["n"] += 1
        if calls["n"] > 1:
            trainer.apply_update(self)
        return metrics

    monkeypatch.setattr(trainer, "train_step", old_style_skipping_the_first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", genframe.GenframeDeprecationWarning)
        result = genframe.train("ebm", overrides=[*QUIET, 'logging.loggers=["jsonl"]'], run_dir=tmp_path / "run",
                                quiet=True)
    # the first step, which the trainer skipped, was the core's to take; the other two were the trainer's
    assert load_checkpoint(result.checkpoint)["trainer"]["steps_taken"] == 3


def test_trainer_step_outside_a_run_never_steps_an_old_trainer_twice(data_dir, monkeypatch):
    recipe = get_host().entry("recipe", "ebm").obj
    config = genframe.recipe_config("ebm", overrides=["trainer.batch_size=8", "sampler.steps=2", "buffer.size=16"])
    model = recipe.build_model(config)
    sampler = recipe.build_sampler(config)
    trainer = recipe.build_trainer(config, model, sampler, torch.device("cpu"))
    batch = torch.rand(8, 1, 32, 32) * 2 - 1
    trainer.step(batch)
    assert trainer.schedule.steps_taken == 1
    real_step = type(trainer).train_step
    monkeypatch.setattr(type(trainer), "train_step", lambda self, b: (real_step(self, b), self.apply_update())[0])
    trainer.step(batch)
    assert trainer.schedule.steps_taken == 2  # stepped inside train_step: Trainer.step left it at that
