"""torchrun under faults: a stalled process, a failure on rank 0 alone, a long rank-0-only pause, and
an exact resume; real ``torchrun`` processes (gloo on CPU, loopback only)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from conftest import free_port
from test_plugins import make_distribution

import genframe
from genframe.training.checkpoint import load_checkpoint

pytestmark = [pytest.mark.slow,  # real torchrun processes: seconds each
              pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                 reason="this PyTorch build has no torch.distributed with gloo")]

# Faults a test turns on through the environment: rank 0's checkpoint writes fail from step
# GF_FAIL_WRITE_AT on (a full disk); the run stops at step GF_STOP_AT; rank 0 alone sleeps GF_PAUSE_S
# seconds at step GF_PAUSE_AT while the others wait for it. Each process notes its pid.
FAULTS = """
import errno
import os
import shutil
import time
import torch
import genframe
from genframe.training import heartbeat

RANK, OUT = int(os.environ.get("RANK", "0")), os.environ["GF_FAULT_DIR"]


@genframe.hookimpl
def genframe_run_start(run):
    open(f"{OUT}/pid{run.rank}", "w").write(str(os.getpid()))
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if os.environ.get("GF_CHAINS"):  # the chains each process starts (or resumes) with, and how many there are
        torch.save({"chains": run.trainer.buffer.oldest_first().clone(), "world": run.world_size},
                   f"{OUT}/chains-launch{restart}-rank{run.rank}.pt")
        if restart != "0" and run.rank == 0:  # the checkpoint this launch resumed from, before it is replaced
            shutil.copy(run.run_dir / "checkpoints" / "last.pt", f"{OUT}/resumed-from.pt")


real_save = torch.save


def save(obj, f, *args, **kwargs):
    at = os.environ.get("GF_FAIL_WRITE_AT")
    step = obj["loop"].get("step", -1) if isinstance(obj, dict) and isinstance(obj.get("loop"), dict) else -1
    if at and RANK == 0 and step >= int(at):
        open(f"{OUT}/failed_at", "w").write(repr(time.time()))
        raise OSError(errno.ENOSPC, "No space left on device")
    return real_save(obj, f, *args, **kwargs)


torch.save = save


class Faults(genframe.Callback):
    name = "faults"

    def on_step_end(self, run, control):
        first_launch = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0" or os.environ.get("GF_DIE_ALWAYS")
        if first_launch and os.environ.get("GF_STEP_SLEEP"):  # time for a test to act between checkpoints
            time.sleep(float(os.environ["GF_STEP_SLEEP"]))
        if run.rank == 1 and run.step == int(os.environ.get("GF_DIE_AT", "0")) and first_launch:
            os._exit(1)  # killed outright, between checkpoints
        if run.step == int(os.environ.get("GF_STOP_AT", "0")):
            control.stop("the test stops here")
        if run.rank == 0 and run.step == int(os.environ.get("GF_PAUSE_AT", "0")):
            before = heartbeat.current().beats
            time.sleep(float(os.environ["GF_PAUSE_S"]))
            open(f"{OUT}/beats", "w").write(f"{before} {heartbeat.current().beats}")


@genframe.hookimpl
def genframe_register(registry):
    registry.add("callback", Faults.name, Faults)
"""

SETTINGS = ["trainer.batch_size=16", "sampler.steps=5", "sampler.generate_steps=10", "buffer.size=64",
            "data.limit=128", "trainer.epochs=2", "logging.log_every=2", "logging.sample_n=0", "logging.chain_n=0",
            'logging.loggers=["console", "jsonl"]', 'callbacks.use=["faults"]']


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_faults", "faults", "gf_faults_plugin", FAULTS)
    return site


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted two-process run of the settings, which the interrupted runs must end as (made once)."""
    base = tmp_path_factory.mktemp("straight")
    if not (Path(os.environ["GENFRAME_DATA_DIR"]) / "mnist").is_dir():
        pytest.skip("MNIST not found under GENFRAME_DATA_DIR")
    (base / "site").mkdir()
    make_distribution(base / "site", "genframe_faults", "faults", "gf_faults_plugin", FAULTS)
    (base / "out").mkdir()
    code, stderr = finish(launch(run_args(base / "run"), base / "site", base / "out"))
    assert code == 0, stderr[-3000:]
    return base / "run"


def launch(args: list[str], site, out, restarts: int = 0, **env) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "GF_FAULT_DIR": str(out), "OMP_NUM_THREADS": "1", **env}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               f"--max-restarts={restarts}", "-m", "genframe", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_args(run, *settings: str) -> list[str]:
    return ["run", "ebm", *(a for s in [*SETTINGS, *settings] for a in ("--set", s)), "--run-dir", str(run)]


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def worker_tracebacks(stderr: str) -> list[str]:
    """Tracebacks the processes printed (torchrun prefixes their lines; its own report has one of its own)."""
    return [line for line in stderr.splitlines() if line.startswith("[rank") and "Traceback" in line]


def metric_rows(run) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "time"} for row in rows]


@pytest.mark.parametrize("stalled", [0, 1])
def test_a_stalled_process_is_noticed_and_the_others_stop_with_one_line(data_dir, tmp_path, site, stalled):
    # SIGSTOP rank 0 (the writer, and the process a rank-0-hosted store would die with) or rank 1 mid-training:
    # the other notices within trainer.peer_timeout and leaves; the last checkpoint resumes.
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    process = launch(run_args(run, "trainer.epochs=1000", "trainer.checkpoint_every=2", "trainer.peer_timeout=3"),
                     site, out)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic(), line) for line in process.stderr))
    reader.start()
    stopped = None
    try:
        deadline = time.monotonic() + 90
        while not (run / "metrics.jsonl").is_file() or len(metric_rows(run)) < 2:
            assert process.poll() is None and time.monotonic() < deadline, "".join(line for _, line in lines)
            time.sleep(0.2)
        stopped = int((out / f"pid{stalled}").read_text())
        os.kill(stopped, signal.SIGSTOP)
        began = time.monotonic()
        while not any("has not answered" in line for _, line in lines):
            assert time.monotonic() - began < 30, "".join(line for _, line in lines)[-3000:]
            time.sleep(0.1)
        noticed = next(t for t, line in lines if "has not answered" in line) - began
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGKILL)
        returncode, _ = finish(process)
        reader.join()
    stderr = "".join(line for _, line in lines)
    assert returncode != 0
    said = [line for line in stderr.splitlines() if "has not answered" in line]
    assert len(said) == 1, stderr[-3000:]
    assert (f"Error: process rank {stalled} of 2 has not answered for 3 s (stalled or dead); stopping. The last "
            f"checkpoint {run}/checkpoints/last.pt is resumable: genframe run ebm --resume {run}") in said[0]
    if stalled == 1:  # rank 0, the writer, recorded why the run ended before it left
        status = json.loads((run / "status.json").read_text())
        assert status["status"] == "failed" and f"rank {stalled} of 2 has not answered" in status["message"]
    # peer_timeout from the last beat seen (up to one 0.6 s beat before or after the SIGSTOP), and the time to say it
    assert 3 - 0.6 <= noticed < 3 + 3, noticed
    assert not worker_tracebacks(stderr), stderr[-3000:]
    step = load_checkpoint(run)["loop"]["step"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "GF_FAULT_DIR": str(out)}
    resumed = subprocess.run([sys.executable, "-m", "genframe", "run", "ebm", "--resume", str(run),
                              "--set", f"trainer.max_steps={step + 2}"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_checkpoint(run)["loop"]["step"] == step + 2


def test_a_dead_process_is_named_by_the_others(data_dir, tmp_path, site):
    # SIGKILL rank 0: its connections close, so rank 1's collective fails at once (a gloo error); its
    # beat has stopped too, which names it.
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    process = launch(run_args(run, "trainer.epochs=1000", "trainer.checkpoint_every=2", "trainer.peer_timeout=3"),
                     site, out)
    deadline = time.monotonic() + 90
    while not (run / "metrics.jsonl").is_file() or len(metric_rows(run)) < 2:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(int((out / "pid0").read_text()), signal.SIGKILL)
    returncode, stderr = finish(process)
    assert returncode != 0
    said = [line for line in stderr.splitlines() if "Error: process rank 0 of 2 has died" in line]
    assert len(said) == 1, stderr[-3000:]
    assert f"is resumable: genframe run ebm --resume {run}" in said[0]
    assert not worker_tracebacks(stderr), stderr[-3000:]
    assert load_checkpoint(run)["loop"]["step"] >= 2


def test_a_failure_on_rank_zero_alone_stops_every_process_promptly(data_dir, tmp_path, site):
    # Rank 0 cannot write its step-3 checkpoint (a full disk); rank 1 waits for it in the next step's
    # collective. Rank 0 says why and announces it; rank 1 leaves at once saying the same.
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    process = launch(run_args(run, "trainer.checkpoint_every=1"), site, out, GF_FAIL_WRITE_AT="3")
    returncode, stderr = finish(process)
    ended = time.time()
    assert returncode != 0
    reason = "could not write checkpoint"
    own = [line for line in stderr.splitlines() if line.startswith(f"Error: {reason}")]
    assert len(own) == 1, stderr[-3000:]
    told = [line for line in stderr.splitlines() if f"Error: process rank 0 of 2 failed: {reason}" in line]
    assert len(told) == 1, stderr[-3000:]
    assert f"is resumable: genframe run ebm --resume {run}" in told[0]
    assert not worker_tracebacks(stderr), stderr[-3000:]
    assert ended - float((out / "failed_at").read_text()) < 10  # torchrun's own shutdown included
    assert load_checkpoint(run)["loop"]["step"] == 2


def test_a_long_pause_on_rank_zero_alone_is_not_a_stall(data_dir, tmp_path, site):
    # Rank 0 sleeps three timeouts inside a callback (as in a long evaluation) while rank 1 waits in a
    # collective: the heartbeat goes on beating, and the run completes.
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    process = launch(run_args(run, "trainer.max_steps=3", "trainer.peer_timeout=2"), site, out,
                     GF_PAUSE_AT="2", GF_PAUSE_S="6")
    returncode, stderr = finish(process)
    assert returncode == 0, stderr[-3000:]
    before, after = map(int, (out / "beats").read_text().split())
    assert after - before >= 6 / 0.4 - 3  # a beat each 0.4 s (peer_timeout / 5) all through the pause
    assert "has not answered" not in stderr
    assert load_checkpoint(run)["loop"]["step"] == 3


def test_a_resumed_torchrun_run_logs_exactly_what_a_straight_run_logs(data_dir, tmp_path, site, straight):
    # Stopped at step 3 (logged every 2 steps), each process holds metric sums not yet logged; the
    # resumed run's step-4 row averages them with step 4's, as the straight run's does.
    split, out = tmp_path / "split", tmp_path / "out"
    out.mkdir()
    code, stderr = finish(launch(run_args(split), site, out, GF_STOP_AT="3"))
    assert code == 0, stderr[-3000:]
    state = load_checkpoint(split)
    assert state["loop"]["step"] == 3 and [p["count"] for p in state["pending_ranks"]] == [1, 1]
    code, stderr = finish(launch(["run", "ebm", "--resume", str(split)], site, out))
    assert code == 0, stderr[-3000:]
    assert metric_rows(split) == metric_rows(straight)
    assert [row["step"] for row in metric_rows(split) if "loss" in row] == [2, 4, 6, 8]


def test_evaluations_leave_the_global_random_stream_untouched(data_dir, tmp_path, monkeypatch):
    # The first evaluation builds the evaluator: it trains the classifier and caches it; the first
    # evaluation of a later process loads it from that cache. Neither may move the global stream that
    # plugins draw from (a resumed run restores it, so a straight run must not lose its place).
    import importlib

    from genframe.callbacks.evaluation import Evaluation, EvaluationSettings
    from genframe.config.sections import build_config
    from genframe.contracts.context import RunContext
    from genframe.using.classifier import ClassifierSpec
    from genframe.using.load import get_recipe

    evaluate = importlib.import_module("genframe.using.evaluate")  # the package's evaluate() hides the module
    monkeypatch.setenv("GENFRAME_CACHE_DIR", str(tmp_path / "cache"))  # nothing cached yet
    monkeypatch.setattr(evaluate, "_SHARED", {})
    real = evaluate.load_or_train  # a small classifier: what matters here is which code runs, not its quality
    monkeypatch.setattr(evaluate, "load_or_train",
                        lambda name, train, classes, spec=None: real(name, train, classes,
                                                                     ClassifierSpec(epochs=1, train_limit=512)))
    recipe = get_recipe("ebm")
    config = build_config(recipe.config_class, overrides=["data.limit=64", "sampler.generate_steps=2"])
    model = recipe.build_model(config)
    ctx = RunContext(tmp_path, "ebm", config, torch.device("cpu"), 1, 1, step=1, model=model,
                     sampler=recipe.build_sampler(config), recipe=recipe, registry=genframe.get_host().registry,
                     sampling_model=lambda: model)
    for first_in_process in ("trains the classifier", "loads it from the cache"):
        evaluate._SHARED.clear()
        torch.manual_seed(1234)
        before = torch.get_rng_state()
        metrics = Evaluation(EvaluationSettings(every_steps=1, n=8, steps=2), ctx).evaluate(ctx)
        assert "eval/fd" in metrics
        assert torch.equal(torch.get_rng_state(), before), first_in_process


def test_a_locked_run_directory_refuses_every_torchrun_process_at_once(data_dir, tmp_path, site):
    from genframe.training.rundir import RunDirLock

    run = tmp_path / "run"
    run.mkdir()
    holder = RunDirLock(run)
    holder.acquire()  # another genframe command is training here
    try:
        began = time.monotonic()
        code, stderr = finish(launch(run_args(run), site, tmp_path))
        took = time.monotonic() - began
    finally:
        holder.release()
    refusals = [line for line in stderr.splitlines() if f"Error: run directory {run} is in use by another" in line]
    assert code != 0 and len(refusals) == 2, stderr  # rank 0 tried the lock; rank 1 learnt the outcome from it
    assert f"pid {os.getpid()}" in refusals[0] and not worker_tracebacks(stderr)
    assert not (run / "checkpoints").exists() and took < 60


def test_a_silent_peer_has_the_first_steps_allowance_then_peer_timeout(tmp_path, monkeypatch):
    # rank 1 never beats: before this process's first step that is a slow start (first_step_timeout), after it a
    # stall (peer_timeout). The watch is real, against a real store; only its leaving (os._exit) is caught.
    from genframe.training.distributed import World
    from genframe.training.heartbeat import Heartbeat

    store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(store.port))
    beat = Heartbeat(World(rank=0, world_size=2), 0.3, tmp_path, "ebm", first_step_timeout=30)
    left: list[str] = []
    monkeypatch.setattr(beat, "_leave", lambda reason: (left.append(reason), beat._stopping.set()))
    beat.start()
    try:
        time.sleep(1.5)  # five times peer_timeout without a beat from rank 1, but before the first step
        assert left == [] and beat.limit == 30
        beat.first_step_done()
        deadline = time.monotonic() + 5
        while not left and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == ["process rank 1 of 2 has not answered for 0.3 s (stalled or dead)"]
    finally:
        beat.stop()


def test_a_group_torchrun_restarts_resumes_by_itself_and_ends_as_a_straight_run(data_dir, tmp_path, site, straight):
    # rank 1 is killed at step 5 (checkpoints every 2 steps); torchrun restarts both with the same command line
    failed, out = tmp_path / "failed", tmp_path / "out"
    out.mkdir()
    # one restart and no more: the restarted group must join at once (each launch keys its process group apart
    # in torchrun's store, which outlives the failed group; without that it now and then read a dead address)
    code, stderr = finish(launch(run_args(failed, "trainer.checkpoint_every=2"), site, out, restarts=1, GF_DIE_AT="5"),
                          timeout=300)
    assert code == 0, stderr[-3000:]
    assert f"genframe: torchrun restart 1: resuming {failed} from step 4, its last checkpoint" in stderr
    assert metric_rows(failed) == metric_rows(straight)  # one history: no step twice, none missing
    a, b = load_checkpoint(straight), load_checkpoint(failed)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    steps = [row["step"] for row in metric_rows(failed) if "loss" in row]
    print(*[line for line in stderr.splitlines() if "torchrun restart" in line],
          f"steps logged: {steps[0]}..{steps[-1]}, {len(steps)} rows, none twice; weights equal to the straight run's "
          f"in all {len(a['model'])} tensors", sep="\n")  # shown with -s, for reports


def test_a_run_that_keeps_failing_stops_after_its_restarts_with_the_reason(data_dir, tmp_path, site):
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    code, stderr = finish(launch(run_args(run, "trainer.checkpoint_every=2"), site, out, restarts=1, GF_DIE_AT="5",
                                 GF_DIE_ALWAYS="1"), timeout=300)
    assert code != 0 and stderr.count("genframe: torchrun restart 1: resuming") == 1
    assert "has died" in stderr or "has not answered" in stderr, stderr[-3000:]  # the survivor names the dead
    assert load_checkpoint(run)["loop"]["step"] == 4  # the last good checkpoint stays, resumable
    print(*[line for line in stderr.splitlines() if "torchrun restart" in line or line.startswith("Error: ")],
          sep="\n")  # shown with -s, for reports


@pytest.mark.parametrize("fault", ["stalled", "dead"])
def test_a_stalled_or_dead_process_on_another_node_ends_each_process_in_one_line(data_dir, tmp_path, site, fault):
    # two torchrun agents on this machine as two nodes (c10d rendezvous on 127.0.0.1), one process each
    port, run, out = free_port(), tmp_path / "run", tmp_path / "out"
    out.mkdir()
    env = node_env(site, out)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={fault}", "-m", "genframe",
               *run_args(run, "trainer.epochs=1000", "trainer.checkpoint_every=2", "trainer.peer_timeout=3")]
    nodes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").is_file() or len(metric_rows(run)) < 2:
            assert all(node.poll() is None for node in nodes) and time.monotonic() < deadline, \
                [node.communicate()[1][-2000:] for node in nodes if node.poll() is not None]
            time.sleep(0.2)
        victim = int((out / "pid1").read_text())
        os.kill(victim, signal.SIGSTOP if fault == "stalled" else signal.SIGKILL)
        survivor = int((out / "pid0").read_text())
        deadline = time.monotonic() + 60
        while _alive(survivor):  # the process on the other node notices and leaves
            assert time.monotonic() < deadline, "the other process did not stop"
            time.sleep(0.1)
        if fault == "stalled":
            os.kill(victim, signal.SIGCONT)  # woken, it finds the run stopped and says so itself
        outputs = [node.communicate(timeout=120) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    errors = [[line for line in err.splitlines() if line.startswith("Error: ")] for _, err in outputs]
    said = [lines for lines in errors if lines]
    assert len(said) == (2 if fault == "stalled" else 1), errors  # one line per process that lived to say it
    assert all(len(lines) == 1 and "process rank 1 of 2" in lines[0] and "resumable" in lines[0] for lines in said)
    print(*[lines[0] for lines in said], sep="\n")  # shown with -s, for reports
    assert not any(worker_tracebacks(err) for _, err in outputs)
    assert load_checkpoint(run)["loop"]["step"] >= 2  # the last checkpoint stays, resumable


def node_env(site, out) -> dict[str, str]:
    """A torchrun agent's environment: the fault plugin on the path, one thread, faults noted in ``out``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "GF_FAULT_DIR": str(out), "OMP_NUM_THREADS": "1"}


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its torchrun agent) is not alive
        return open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the dying node's process in /proc")
def test_an_elastic_run_restarts_on_the_node_left_with_the_chains_of_both(data_dir, tmp_path, site):
    # --nnodes 1:2, two agents on this machine as two nodes (c10d rendezvous on 127.0.0.1, one process each);
    # one node dies mid-run (its agent and its process killed at once); torchrun restarts the group on the node
    # left, whose one process resumes from the last checkpoint with both processes' chains pooled and split
    port, run, out = free_port(), tmp_path / "run", tmp_path / "out"
    out.mkdir()
    env = {**node_env(site, out), "GF_STEP_SLEEP": "0.3", "GF_CHAINS": "1",
           "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1:2", "--nproc-per-node=1",
               "--max-restarts=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=elastic",
               "--rdzv-conf=last_call_timeout=8", "-m", "genframe",
               *run_args(run, "trainer.epochs=1000", "trainer.max_steps=24", "trainer.checkpoint_every=2",
                         "trainer.peer_timeout=5")]

    def start():
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    survivor = start()
    doomed = None
    try:
        deadline = time.monotonic() + 60
        while True:  # the first agent hosts the rendezvous store: the node that dies must not be the one holding it
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert survivor.poll() is None and time.monotonic() < deadline, survivor.communicate()[1][-2000:]
            time.sleep(0.2)
        doomed = start()
        deadline = time.monotonic() + 180
        while not ((run / "checkpoints" / "last.pt").is_file() and load_checkpoint(run)["loop"]["step"] >= 4):
            assert survivor.poll() is None and doomed.poll() is None and time.monotonic() < deadline, \
                [p.communicate()[1][-2000:] for p in (survivor, doomed) if p.poll() is not None]
            time.sleep(0.2)
        # the machine is gone: its agent and its process (torchrun starts each in a session of its own)
        workers = _children(doomed.pid)
        assert workers, "the dying node's agent has no process"
        os.killpg(doomed.pid, signal.SIGKILL)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        _, stderr = survivor.communicate(timeout=300)
    finally:
        for agent in (survivor, doomed):
            if agent is not None and agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
    assert survivor.returncode == 0, stderr[-3000:]
    resumed = load_checkpoint(out / "resumed-from.pt")
    assert f"genframe: torchrun restart 1: resuming {run} from step {resumed['loop']['step']}" in stderr
    assert [torch.load(out / f"chains-launch0-rank{r}.pt", weights_only=True)["world"] for r in (0, 1)] == [2, 2]
    alone = torch.load(out / "chains-launch1-rank0.pt", weights_only=True)
    assert alone["world"] == 1
    # the chains it goes on with: all distinct, from both saved processes' buffers
    saved = [state["buffer"]["storage"].flatten(1) for state in resumed["trainer_ranks"]]
    chains = alone["chains"].flatten(1)
    assert len(saved) == 2 and torch.unique(chains, dim=0).shape[0] == chains.shape[0] == 64
    from_each = [sum(bool((row == part).all(dim=1).any()) for row in chains) for part in saved]
    assert sum(from_each) == 64 and min(from_each) > 0, from_each
    print(*[line for line in stderr.splitlines() if "torchrun restart" in line],
          f"the process left holds {chains.shape[0]} distinct chains: {from_each[0]} from saved process 0, "
          f"{from_each[1]} from saved process 1", sep="\n")  # shown with -s, for reports
    state = load_checkpoint(run)
    assert state["loop"]["step"] == 24 and len(state["trainer_ranks"]) == 1
    steps = [row["step"] for row in metric_rows(run) if "loss" in row]
    assert steps == sorted(set(steps)) and steps[-1] == 24  # one history: no step twice

