"""One writer per run directory, no dead ends, a status file tools can read, and stops during the
end-of-run work: each against real ``genframe`` processes on real MNIST."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY
from test_reliability import SLOW, genframe_cli, logged_steps, wait_for_step, with_sets

import genframe
from genframe.cli.main import cli
from genframe.training.checkpoint import load_checkpoint
from genframe.training.rundir import read_status

pytestmark = pytest.mark.slow


def one_error(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code != 0 and len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


def status_of(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_lock(data_dir, tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen(genframe_cli("run", "ebm", *with_sets(SLOW), "--run-dir", str(run)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_step(process, run, 1)
        assert read_status(run)["status"] == "running" and read_status(run)["pid"] == process.pid
        for args in (["run", "ebm", "--run-dir", str(run)], ["run", "ebm", "--resume", str(run)]):
            error = one_error(CliRunner().invoke(cli, args))
            assert f"run directory {run} is in use by another genframe process (pid {process.pid} on " \
                   f"{socket.gethostname()}" in error and "genframe run ebm" in error, error
        steps = logged_steps(run)
        assert steps == sorted(set(steps))  # one writer: no interleaved rows
        # a reader is welcome while it trains: it sees a whole checkpoint, and eval writes its own report
        assert load_checkpoint(run)["recipe"] == "ebm"
        evaluated = CliRunner().invoke(cli, ["eval", str(run), "--n", "20", "--steps", "2", "--device", "cpu"])
        assert evaluated.exit_code == 0 and (run / "eval.json").exists(), evaluated.output
    finally:
        process.kill()
        process.wait()
    assert read_status(run)["status"] == "interrupted"  # "running" but its process is gone
    assert status_of(run)["status"] == "running"
    result = genframe.train("ebm", overrides=["trainer.max_steps=3"], resume=run, quiet=True)  # no stale lock
    assert result.step == 3 and status_of(run)["status"] == "completed"


def test_two_runs_started_together_into_one_directory_one_is_refused(data_dir, tmp_path):
    run = tmp_path / "run"
    args = genframe_cli("run", "ebm", *with_sets([*TINY, "trainer.max_steps=4"]), "--run-dir", str(run))
    processes = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=300), p.communicate()[1]) for p in processes]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    refused = next(err for code, err in outcomes if code == 2)
    assert "is in use by another genframe process" in refused or "already exists; continue it with --resume" in refused
    assert logged_steps(run) == [2, 4]


def test_a_run_killed_before_its_first_checkpoint_is_started_afresh(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    for path in (run / "checkpoints").iterdir():  # what a run killed before step 0 was saved leaves behind
        path.unlink()
    (run / "status.json").write_text(json.dumps({**status_of(run), "status": "running", "step": 0, "pid": 2**22 + 7}))
    (run / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # the killed writer's
    error = one_error(CliRunner().invoke(cli, ["run", "ebm", "--resume", str(run)]))
    assert f"start it afresh with `genframe run RECIPE --run-dir {run}`" in error
    with pytest.warns(UserWarning, match="holds no checkpoint .* starting it afresh"):
        result = genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=4"], run_dir=run, quiet=True)
    assert result.step == 4 and sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.pt", "previous.pt"]
    assert status_of(run)["status"] == "completed" and logged_steps(run) == [2, 4]  # the dead run's rows moved aside
    (aside,) = run.glob("abandoned-*")
    assert logged_steps(aside) == [2] and (aside / "config.json").exists()  # nothing of it was deleted


def test_a_run_that_has_checkpoints_or_completed_is_never_started_afresh(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    (run / "checkpoints" / "last.pt").rename(run / "checkpoints" / "best.pt")
    (run / "checkpoints" / "previous.pt").unlink()
    error = one_error(CliRunner().invoke(cli, ["run", "ebm", *with_sets(TINY), "--run-dir", str(run)]))
    assert "holds checkpoints (best.pt) but no last.pt; resume from one with --resume" in error
    (run / "checkpoints" / "best.pt").unlink()
    error = one_error(CliRunner().invoke(cli, ["run", "ebm", *with_sets(TINY), "--run-dir", str(run)]))
    assert "holds the record of a run that completed but no last.pt" in error
    assert (run / "metrics.jsonl").exists() and not list(run.glob("abandoned-*"))


def test_a_damaged_status_file_is_no_status(tmp_path):
    for text in ("null", "[1]", "{not json"):
        (tmp_path / "status.json").write_text(text)
        assert read_status(tmp_path) is None


def test_an_unknown_logger_is_refused_before_a_run_directory_exists(tmp_path):
    error = one_error(CliRunner().invoke(cli, ["run", "ebm", "--set", 'logging.loggers=["nope"]',
                                               "--run-dir", str(tmp_path / "run")]))
    assert "unknown logger 'nope'" in error and not (tmp_path / "run").exists()


def test_stale_temporary_files_are_cleaned_when_a_run_resumes(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    stale = [run / "checkpoints" / ".last.pt.x1y2.tmp", run / ".config.json.q9.tmp", run / "checkpoints" / ".previous.pt.staging"]
    for path in stale:
        path.write_bytes(b"left by a killed writer")
    genframe.train("ebm", overrides=["trainer.max_steps=4"], resume=run, quiet=True)
    assert not any(path.exists() for path in stale)


def test_a_directory_of_other_files_is_never_cleared(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    error = one_error(CliRunner().invoke(cli, ["run", "ebm", *with_sets(TINY), "--run-dir", str(folder)]))
    assert "holds files genframe did not write (notes.txt); choose a new or empty --run-dir" in error
    assert (folder / "notes.txt").read_text() == "precious"


def test_the_status_file_says_how_each_run_ended(data_dir, tmp_path):
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=tmp_path / "done", quiet=True)
    assert status_of(tmp_path / "done")["status"] == "completed"
    assert status_of(tmp_path / "done")["step"] == 2
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=50", "trainer.max_minutes=0.0001"],
                   run_dir=tmp_path / "early", quiet=True)
    early = status_of(tmp_path / "early")
    assert early["status"] == "finished early" and "trainer.max_minutes" in early["message"]
    with pytest.raises(genframe.DivergenceError):
        genframe.train("ebm", overrides=[*TINY, "trainer.score_limit=1e-9",
                                         "callbacks.divergence_guard.on_divergence=stop"],
                       run_dir=tmp_path / "failed", quiet=True)
    failed = status_of(tmp_path / "failed")
    assert failed["status"] == "failed" and "training diverged" in failed["message"]


def test_a_stop_during_the_end_of_run_work_exits_143_and_resume_makes_only_what_is_missing(data_dir, tmp_path):
    run = tmp_path / "run"
    # long final pictures (5000-step chains): seconds of end-of-run work after 2 quick steps
    settings = [*TINY, "trainer.max_steps=2", "sampler.generate_steps=5000", "logging.chain_n=4"]
    process = subprocess.Popen(genframe_cli("run", "ebm", *with_sets(settings), "--run-dir", str(run)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # SIGABRT prints every thread's stack
    deadline = time.monotonic() + 300
    while (read_status(run) or {}).get("phase") != "end of run":
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=120)  # the whole end-of-run work takes about 10 s on a loaded Zen 3
    except subprocess.TimeoutExpired:  # once in a parallel run it hung: say where each thread was
        process.send_signal(signal.SIGABRT)
        pytest.fail(f"no exit 120 s after SIGTERM; its threads:\n{process.communicate(timeout=60)[1][-6000:]}")
    assert process.returncode == 143, err
    assert "SIGTERM during the end-of-run work at step 2: the training is saved" in err, err
    assert "Traceback" not in err and "run completed" not in out
    status = status_of(run)
    assert status["status"] == "interrupted" and status["phase"] == "end of run"
    assert not (run / "samples" / "final_chain.gif").exists()
    rows_before = (run / "metrics.jsonl").read_text().splitlines()
    last_written = (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    result = genframe.train("ebm", resume=run, quiet=True)
    assert result.step == 2 and status_of(run)["status"] == "completed"
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert rows == rows_before  # nothing trained or measured again: only the missing pictures were made
    assert (run / "samples" / "final_chain.gif").exists()
    assert load_checkpoint(run)["loop"]["step"] == 2  # no training step was added
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == last_written  # nor the checkpoint rewritten


def test_a_resume_after_a_stop_in_the_end_of_run_work_may_ask_for_more_steps(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    status = status_of(run)
    status.update(status="interrupted", phase="end of run", end_of_run_done=[])  # as a stop there leaves it
    (run / "status.json").write_text(json.dumps(status))
    result = genframe.train("ebm", overrides=["trainer.max_steps=4"], resume=run, quiet=True)
    assert result.step == 4 and logged_steps(run) == [2, 4]


@pytest.mark.parametrize("delay", [0.5, 2.0])
def test_one_interrupt_at_start_up_is_acted_on_in_one_line(data_dir, tmp_path, delay):
    # 0.5 s: Python is importing torch (a KeyboardInterrupt there could abort the process: exit -2 or -6);
    # 2.0 s: the run is starting up (data, model, kernels) or training. One signal, acted on each time.
    process = subprocess.Popen(genframe_cli("run", "ebm", *with_sets([*TINY, "trainer.max_steps=100000"]), "--run-dir",
                                            str(tmp_path / "run")),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"})
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("one SIGINT at start-up was not acted on within 60 s")
    assert process.returncode == 130 and "Traceback" not in err, err
    assert "interrupted" in err or "exiting now" in err, err


def test_a_signal_while_a_run_starts_up_stops_it_after_its_first_step_with_a_checkpoint(data_dir, tmp_path,
                                                                                        monkeypatch):
    from genframe.contracts.errors import RunInterrupted
    from genframe.training import run as run_module

    build = run_module.TrainingRun.build

    def build_then_signal(self):
        parts = build(self)
        os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C came while the model and kernels were being made
        time.sleep(0.2)
        return parts

    monkeypatch.setattr(run_module.TrainingRun, "build", build_then_signal)
    with pytest.raises(RunInterrupted) as stopped:
        genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=1000"], run_dir=tmp_path / "run", quiet=True)
    assert stopped.value.exit_code == 130 and "SIGINT at step 1" in str(stopped.value)
    assert load_checkpoint(tmp_path / "run")["loop"]["step"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the caller's handler is back


def test_a_run_that_fails_before_writing_anything_leaves_no_directory(data_dir, tmp_path, monkeypatch):
    from genframe.training import run as run_module

    def no_network(*args, **kwargs):
        raise genframe.contracts.errors.RunError("the data could not be read")

    monkeypatch.setattr(run_module.TrainingRun, "build", no_network)
    with pytest.raises(genframe.contracts.errors.RunError):
        genframe.train("ebm", overrides=TINY, run_dir=tmp_path / "new", quiet=True)
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()  # a folder the user made is theirs: left as it was
    with pytest.raises(genframe.contracts.errors.RunError):
        genframe.train("ebm", overrides=TINY, run_dir=tmp_path / "kept", quiet=True)
    assert (tmp_path / "kept").is_dir()


def test_a_signal_landing_inside_a_logger_at_the_end_still_interrupts_the_run(data_dir, tmp_path):
    from genframe.contracts.errors import RunInterrupted
    from genframe.contracts.hookspecs import hookimpl
    from genframe.plugins.host import get_host

    class StopsWhileLogging:
        @hookimpl
        def genframe_log(self, run, step, metrics, images):
            if "final_chain" in images or any("final" in str(v) for v in images.values()):
                os.kill(os.getpid(), signal.SIGTERM)  # lands inside this hook, during the end-of-run pictures
                time.sleep(0.5)

    host = get_host()
    host.pm.register(StopsWhileLogging(), name="stops-while-logging")
    with pytest.raises(RunInterrupted) as stopped:
        genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2", "logging.chain_n=4"], run_dir=tmp_path / "run",
                       quiet=True)
    assert stopped.value.exit_code == 143 and "during the end-of-run work" in str(stopped.value)
    assert status_of(tmp_path / "run")["status"] == "interrupted"


def test_a_full_disk_while_drawing_pictures_is_one_line_and_the_status_says_failed(data_dir, tmp_path, monkeypatch):
    import errno

    from genframe.training.previews import Previewer

    def full_disk(self, step):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "samples" / "x.png"))

    monkeypatch.setattr(Previewer, "grids", full_disk)
    result = CliRunner().invoke(cli, ["run", "ebm", *with_sets([*TINY, "trainer.max_steps=2"]),
                                      "--run-dir", str(tmp_path / "run")])
    error = one_error(result)
    assert "could not write" in error and "No space left on device" in error and "--resume" in error
    assert status_of(tmp_path / "run")["status"] == "failed"


def test_a_damaged_holder_record_still_refuses_in_one_line(tmp_path):
    from genframe.training.rundir import HOLDER_NAME, RunDirLock

    holder = RunDirLock(tmp_path)
    holder.acquire()
    try:
        (tmp_path / HOLDER_NAME).write_text("[1, 2]")
        with pytest.raises(genframe.contracts.errors.RunError, match="is in use by another genframe process"):
            RunDirLock(tmp_path).acquire()
    finally:
        holder.release()
    RunDirLock(tmp_path).acquire()  # released: free again


def test_a_run_killed_outright_shows_the_step_of_its_last_checkpoint(data_dir, tmp_path):
    # kill -9: no handler runs, so status.json says what the last checkpoint wrote (it once kept the start's step 0)
    run = tmp_path / "run"
    process = subprocess.Popen(genframe_cli("run", "ebm", *with_sets([*SLOW, "trainer.checkpoint_every=2"]),
                                            "--run-dir", str(run)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        wait_for_step(process, run, 5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    saved = load_checkpoint(run)["loop"]["step"]
    assert saved >= 4 and status_of(run)["step"] == saved and status_of(run)["status"] == "running"
    assert read_status(run)["status"] == "interrupted"  # its process is gone: readers are told
