"""No lost work: exact resume after SIGKILL, clean stops on SIGINT/SIGTERM, atomic checkpoints,
the divergence guard, and safe, clear checkpoint loading."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY

import genframe
from genframe.contracts.errors import INTERRUPTED, CheckpointError, DivergenceError
from genframe.training.checkpoint import load_checkpoint
from genframe.training.rewind import DivergenceWarning

# 320 images in batches of 16: 20-step epochs, 2 of them; checkpoints every 3 steps.
KILLABLE = ["trainer.batch_size=16", "sampler.steps=20", "sampler.generate_steps=10", "buffer.size=128",
            "data.limit=320", "trainer.epochs=2", "trainer.checkpoint_every=3", "logging.log_every=2",
            "logging.sample_n=4", "logging.chain_n=0"]
# Slow steps (about a second each), so a signal lands mid-run.
SLOW = ["trainer.batch_size=64", "sampler.steps=200", "sampler.generate_steps=10", "buffer.size=256",
        "data.limit=6400", "logging.log_every=1", "logging.sample_n=4", "logging.chain_n=0"]


def genframe_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "genframe", *args]


def with_sets(settings: list[str]) -> list[str]:
    return [arg for item in settings for arg in ("--set", item)]


def logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError):
            pass
    return steps


def wait_for_step(process: subprocess.Popen, run: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while max(logged_steps(run), default=0) < step:
        assert process.poll() is None, f"run ended early: {process.communicate()}"
        assert time.monotonic() < deadline, "run did not reach the step in time"
        time.sleep(0.005)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(data_dir, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(genframe_cli("run", "ebm", *with_sets(KILLABLE), "--run-dir", str(straight), "--quiet"),
                   check=True, capture_output=True)
    process = subprocess.Popen(genframe_cli("run", "ebm", *with_sets(KILLABLE), "--run-dir", str(killed), "--quiet"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_step(process, killed, 8)  # past the checkpoint at step 6, mid-epoch 1
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    resumed_from = load_checkpoint(killed)["loop"]["step"]
    assert 0 < resumed_from < 20 and resumed_from % 3 == 0
    subprocess.run(genframe_cli("run", "ebm", "--resume", str(killed), "--quiet"), check=True, capture_output=True)

    a, b = load_checkpoint(straight), load_checkpoint(killed)
    a["loop"].pop("train_seconds"), b["loop"].pop("train_seconds")  # wall time: the one thing that differs
    assert a["loop"] == b["loop"] == {"epoch": 2, "batch": 0, "step": 40, "rollbacks": 0,
                                  "world_size": 1}
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert torch.equal(a["trainer"]["buffer"]["storage"], b["trainer"]["buffer"]["storage"])
    assert torch.equal(a["trainer"]["generator"], b["trainer"]["generator"])
    for sa, sb in zip(a["trainer"]["optimizer"]["state"].values(), b["trainer"]["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])

    def records(run):
        return [{k: v for k, v in json.loads(line).items() if k != "time"}
                for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert records(straight) == records(killed)  # every metric, bit for bit, nothing repeated or lost


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_checkpoints_closes_loggers_and_exits(data_dir, tmp_path, signum, code):
    run = tmp_path / "run"
    process = subprocess.Popen(genframe_cli("run", "ebm", *with_sets(SLOW), "--run-dir", str(run)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_step(process, run, 2)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    name = signal.Signals(signum).name
    stopped_at = load_checkpoint(run)["loop"]["step"]
    assert f"{name} at step {stopped_at}: checkpoint written to {run / 'checkpoints' / 'last.pt'}" in err
    assert f"genframe run ebm --resume {run}" in err
    assert "run interrupted" in err  # the console logger's run_end: loggers were closed
    assert max(logged_steps(run)) == stopped_at and "Traceback" not in err


@pytest.mark.slow
def test_a_second_signal_exits_at_once_and_the_checkpoint_survives(data_dir, tmp_path):
    run = tmp_path / "run"
    # steps of 1000 Langevin steps (about a second here), so the second signal lands inside the step the
    # first one lets finish; it is sent once the run says it heard the first, not after a guessed delay
    slower = [*SLOW, "sampler.steps=1000"]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(genframe_cli("run", "ebm", *with_sets(slower), "--run-dir", str(run)),
                                   stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    wait_for_step(process, run, 1)
    process.send_signal(signal.SIGINT)
    wait_for_text(process, log, "SIGINT received, stopping after this step")
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    err = log.read_text()
    assert process.returncode == 130
    assert "second SIGINT, exiting now" in err and "Traceback" not in err, err
    state = load_checkpoint(run)  # whatever was last renamed into place is whole
    assert state["recipe"] == "ebm" and state["loop"]["step"] in (0, *logged_steps(run))
    assert not [p for p in (run / "checkpoints").iterdir() if p.name not in ("last.pt", "previous.pt")]  # no temp files


def wait_for_text(process: subprocess.Popen, path: Path, text: str, timeout: float = 120) -> None:
    """Until the process has written ``text`` to the file ``path`` (its stderr)."""
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert process.poll() is None, f"the process ended before saying {text!r}: {path.read_text()}"
        assert time.monotonic() < deadline, f"the process did not say {text!r} within {timeout} s"
        time.sleep(0.005)


@pytest.mark.parametrize("first", [False, True])
def test_a_signal_while_the_cli_exits_is_one_line_not_a_traceback(first):
    # The window CI hit: a second Ctrl-C sent just after a stopped run wrote its checkpoint landed in
    # torch's teardown at interpreter exit, as a KeyboardInterrupt traceback.
    code = ("import os, signal, time, genframe.util.signals as s\n"
            f"s._first_signal = signal.SIGINT if {first} else None\n"
            "s.exit_at_once_from_now()\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "time.sleep(30)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130, result
    # a first signal is the command's one interrupt line, as at start-up; a second says it exits now
    assert result.stderr.strip() == ("genframe: second SIGINT, exiting now" if first else INTERRUPTED)


def test_a_failed_checkpoint_write_keeps_the_previous_one(data_dir, tmp_path, monkeypatch):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")  # something was written before the disk filled up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError, match="No space left on device; the previous checkpoint is unchanged"):
        genframe.train("ebm", overrides=["trainer.max_steps=4"], resume=run, quiet=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt", "previous.pt"]  # no temporary left
    assert load_checkpoint(run)["loop"]["step"] == 2


def test_divergence_rolls_back_with_a_lower_learning_rate_then_recovers(data_dir, tmp_path, monkeypatch):
    from genframe_ebm.trainer import CDTrainer

    real_step, calls = CDTrainer.train_step, {"n": 0}

    def diverges_once(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # the third update blows up, once
            raise DivergenceError("non-finite loss (nan)")
        return real_step(self, batch)

    monkeypatch.setattr(CDTrainer, "train_step", diverges_once)
    run = tmp_path / "run"
    with pytest.warns(DivergenceWarning, match=r"non-finite loss \(nan\) at step 3 .* rolled back to step 2"):
        result = genframe.train("ebm", overrides=[*TINY, "trainer.checkpoint_every=2"], run_dir=run, quiet=True)
    assert result.status == "completed" and result.step == 6
    state = load_checkpoint(run)
    assert state["loop"]["rollbacks"] == 1
    assert state["trainer"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.5e-4)
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e.get("event", e["step"]) for e in events] == [2, "rollback", 4, 6]


def test_the_steps_redone_after_a_rollback_draw_fresh_noise_rather_than_replay_the_diverged_draws(
        data_dir, tmp_path, monkeypatch):
    # Replaying the exact draws that diverged tends to diverge again (a fast-recipe collapse recurred at
    # the very same step on replay), so a rollback reseeds the trainer's stream.
    from genframe_ebm.trainer import CDTrainer

    real_step, states = CDTrainer.train_step, []

    def diverges_once(self, batch):
        states.append(self.generator.get_state().clone())
        if len(states) == 3:
            raise DivergenceError("non-finite loss (nan)")
        return real_step(self, batch)

    monkeypatch.setattr(CDTrainer, "train_step", diverges_once)
    with pytest.warns(DivergenceWarning, match="rolled back to step 2"):
        genframe.train("ebm", overrides=[*TINY, "trainer.checkpoint_every=2"], run_dir=tmp_path / "run", quiet=True)
    # Call 3 was step 3 the first time; call 4 is step 3 redone from the step-2 checkpoint.
    assert not torch.equal(states[3], states[2])
    assert len(states) == 7


def test_a_crash_right_after_a_rollback_then_resume_equals_a_run_that_went_straight_on(data_dir, tmp_path, monkeypatch):
    # The rollback writes a checkpoint after it reseeds, so a resume redoes the steps with the same fresh draws.
    from genframe_ebm.trainer import CDTrainer

    real_step, calls, crash_on = CDTrainer.train_step, [], []

    def diverges_on_the_third_call(self, batch):
        calls.append(len(calls) + 1)
        if calls[-1] == 3:
            raise DivergenceError("non-finite loss (nan)")
        if calls[-1] in crash_on:
            raise RuntimeError("simulated crash")
        return real_step(self, batch)

    monkeypatch.setattr(CDTrainer, "train_step", diverges_on_the_third_call)
    settings = [*TINY, "trainer.checkpoint_every=2"]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    with pytest.warns(DivergenceWarning, match="rolled back to step 2"):
        genframe.train("ebm", overrides=settings, run_dir=straight, quiet=True)
    calls.clear()
    crash_on.append(4)  # the first redone step: nothing after the rollback's own checkpoint is saved
    with pytest.warns(DivergenceWarning), pytest.raises(RuntimeError, match="simulated crash"):
        genframe.train("ebm", overrides=settings, run_dir=crashed, quiet=True)
    assert load_checkpoint(crashed)["loop"]["step"] == 2
    genframe.train("ebm", resume=crashed, quiet=True)

    a, b = load_checkpoint(straight), load_checkpoint(crashed)
    assert a["loop"]["step"] == b["loop"]["step"] == 6 and a["loop"]["rollbacks"] == b["loop"]["rollbacks"] == 1
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    assert torch.equal(a["trainer"]["generator"], b["trainer"]["generator"])


def test_the_seed_after_a_rollback_differs_by_rollback_process_and_step_and_is_reproducible():
    from genframe.training.runsetup import rollback_seed

    seeds = {rollback_seed(0, rank, step, n) for rank in (0, 1) for step in (0, 100) for n in (1, 2)}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    assert rollback_seed(0, 0, 100, 1) == rollback_seed(0, 0, 100, 1) != rollback_seed(1, 0, 100, 1)


def test_persistent_divergence_stops_with_a_message_after_the_allowed_rollbacks(data_dir, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DivergenceError) as err, pytest.warns(DivergenceWarning):
        genframe.train("ebm", overrides=[*TINY, "trainer.score_limit=1e-9",
                                         "callbacks.divergence_guard.max_rollbacks=2"],
                       run_dir=run, quiet=True)
    message = str(err.value)
    assert "training diverged: score" in message and "beyond trainer.score_limit=1e-09 at step 1" in message
    assert "after 2 rollback(s)" in message and str(run / "checkpoints" / "last.pt") in message
    state = load_checkpoint(run)  # the last good checkpoint, with the lowered learning rate
    assert state["loop"]["step"] == 0 and state["loop"]["rollbacks"] == 2
    assert state["trainer"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.25e-4)
    # resumed, the guard's allowance starts afresh (2 more), and the run's count goes on (it seeds each
    # rollback's draws; the message names the run's rollbacks, all 4)
    with pytest.raises(DivergenceError, match=r"after 4 rollback\(s\)"), pytest.warns(DivergenceWarning):
        genframe.train("ebm", resume=run, quiet=True)
    state = load_checkpoint(run)
    assert state["loop"]["rollbacks"] == 4 and state["callbacks"]["divergence_guard"]["forgiven"] == 2


def test_a_cdiv_beyond_its_limit_counts_as_divergence_and_none_is_the_default(data_dir, tmp_path):
    # The collapse of short-run training: every chain told from real data, a large |cdiv| with small scores.
    with pytest.raises(DivergenceError, match=r"cdiv -?[0-9.e-]+ beyond callbacks.divergence_guard.limit=1e-09 "
                                              r"at step 1 \(epoch 1\)"):
        genframe.train("ebm", overrides=[*TINY, "callbacks.divergence_guard.limit=1e-9",
                                         "callbacks.divergence_guard.on_divergence=stop"],
                       run_dir=tmp_path / "limited", quiet=True)
    result = genframe.train("ebm", overrides=[*TINY, "callbacks.divergence_guard.limit=100"],
                            run_dir=tmp_path / "loose", quiet=True)
    assert result.status == "completed" and result.step == 6


def test_divergence_with_on_divergence_stop_stops_at_once(data_dir, tmp_path):
    with pytest.raises(DivergenceError, match=r"training diverged: score .* at step 1 \(epoch 1\); the last good"):
        genframe.train("ebm", overrides=[*TINY, "trainer.score_limit=1e-9",
                                         "callbacks.divergence_guard.on_divergence=stop"],
                       run_dir=tmp_path / "run", quiet=True)


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "recipe": "ebm", "model": Payload()}, path)
    with pytest.raises(CheckpointError, match="refused to load .*could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_damaged_and_foreign_checkpoints_give_clear_errors(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    good = (run / "checkpoints" / "last.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="is damaged"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="is not a genframe checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not fit this config's model"):
        genframe.train("ebm", overrides=["trainer.max_steps=4", "model.hidden=32"], resume=run, quiet=True)


def test_resuming_a_checkpoint_from_other_versions_warns(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    state = load_checkpoint(run)
    state["plugin_version"] = "0.0.1"
    torch.save(state, run / "checkpoints" / "last.pt")
    with pytest.warns(UserWarning, match=r"made by other versions \(ebm 0.0.1 -> 0.2.0\)"):
        genframe.train("ebm", overrides=["trainer.max_steps=4"], resume=run, quiet=True)


def test_a_learning_rate_set_on_resume_takes_effect(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    genframe.train("ebm", overrides=["trainer.max_steps=3", "trainer.lr=0.0005"], resume=run, quiet=True)
    assert load_checkpoint(run)["trainer"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4)
    genframe.train("ebm", overrides=["trainer.max_steps=4"], resume=run, quiet=True)  # unchanged: kept
    assert load_checkpoint(run)["trainer"]["optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4)


def test_an_unwritable_run_directory_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(genframe.RunError, match="cannot create run directory"):
        genframe.train("ebm", overrides=TINY, run_dir=blocker / "run", quiet=True)
