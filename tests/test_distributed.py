"""Data-parallel training with real ``torchrun`` processes (gloo on CPU, loopback only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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

# Each process records, at the end of the run, its final weights and whether it had any loggers.
# Rank 0 also dawdles a second in its last hook and notes when it is done; the others note when they exit.
PROBE = """
import atexit
import os
import time
import torch
import genframe

@genframe.hookimpl
def genframe_run_start(run):
    if os.environ.get("GF_CHAINS"):  # the chains each process starts (or resumes) with
        torch.save(run.trainer.buffer.oldest_first().clone(), f"{os.environ['GF_PROBE_DIR']}/chains{run.rank}.pt")


@genframe.hookimpl
def genframe_run_end(run, status):
    out = os.environ["GF_PROBE_DIR"]
    torch.save({"state": {k: v.clone() for k, v in run.model.state_dict().items()}, "loggers": list(run.loggers),
                "rank": run.rank, "world": run.world_size, "status": status}, f"{out}/rank{run.rank}.pt")
    if run.rank == 0:
        time.sleep(1.0)
        open(f"{out}/done0", "w").write(repr(time.time()))
    else:
        atexit.register(lambda: open(f"{out}/exit{run.rank}", "w").write(repr(time.time())))

if os.environ.get("GF_SLOW_CLOCK_RANK") == os.environ.get("RANK"):  # this process times its steps twice as long
    import genframe.training.loop

    class SlowClock:
        def __getattr__(self, name):
            return getattr(time, name)

        def perf_counter(self):
            return 2 * time.perf_counter()

    genframe.training.loop.time = SlowClock()
"""

SETTINGS = ["trainer.batch_size=16", "sampler.steps=5", "sampler.generate_steps=10", "buffer.size=64",
            "data.limit=128", "trainer.epochs=2", "logging.log_every=1", "logging.sample_n=4", "logging.chain_n=0",
            'logging.loggers=["console", "jsonl", "wandb"]', "logging.wandb.mode=offline"]


def torchrun(nproc: int, args: list[str], site, probe_dir, **env_vars: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "GF_PROBE_DIR": str(probe_dir), "OMP_NUM_THREADS": "1", **env_vars,
           "PYTHONFAULTHANDLER": "1"}  # a process that aborts says where its threads were
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "genframe", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_probe", "probe", "gf_probe_plugin", PROBE)
    return site


def probes(folder, world):
    return [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in range(world)]


def test_two_processes_train_one_model_and_only_rank_zero_writes(data_dir, tmp_path, site):
    run, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    sets = [arg for item in SETTINGS for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(run)], site, probe)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = probes(probe, 2)
    assert rank0["world"] == rank1["world"] == 2 and rank0["status"] == rank1["status"] == "completed"
    for name, tensor in rank0["state"].items():  # gradients averaged: the replicas never drift apart
        assert torch.equal(tensor, rank1["state"][name]), name
    assert len(rank0["loggers"]) == 3 and rank1["loggers"] == []  # only rank 0 logs
    # Rank 1 leaves only after rank 0 is done: one that tore down gloo and exited while rank 0 still
    # worked aborted now and then (research/scripts/torchrun_exit.py)
    assert float((probe / "exit1").read_text()) >= float((probe / "done0").read_text())
    # 128 images / 2 processes / batch 16 = 4 steps per epoch; each step logged once, by rank 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, 9))
    assert len(list(run.glob("wandb/offline-run-*"))) == 1
    assert result.stdout.count("run completed:") == 1
    state = load_checkpoint(run)
    assert state["loop"]["step"] == 8 and len(state["trainer_ranks"]) == 2
    buffers = [s["buffer"]["storage"] for s in state["trainer_ranks"]]
    assert not torch.equal(buffers[0], buffers[1])  # each process keeps its own replay buffer and stream
    assert not torch.equal(state["trainer_ranks"][0]["generator"], state["trainer_ranks"][1]["generator"])
    for name, tensor in rank0["state"].items():
        assert torch.equal(tensor, state["model"][name])

    # N -> 1: the two-process checkpoint resumes in a single process (rank 0's buffer and stream),
    # stopping mid-epoch: 6 of the 8 single-process batches of epoch 3
    resumed = genframe.train("ebm", overrides=["trainer.epochs=3", "trainer.max_steps=14",
                                               'logging.loggers=["jsonl"]'], resume=run, quiet=True)
    assert resumed.status == "completed" and resumed.step == 14
    mid = load_checkpoint(run)
    assert len(mid["trainer_ranks"]) == 1 and (mid["loop"]["epoch"], mid["loop"]["batch"]) == (2, 6)

    # 1 -> 2: back onto two processes mid-epoch: 6 x 16 examples seen = 3 two-process batches of 4
    probe2 = tmp_path / "probe2"
    probe2.mkdir()
    again = torchrun(2, ["run", "ebm", "--resume", str(run), "--set", "trainer.epochs=4",
                         "--set", "trainer.max_steps=null"], site, probe2)
    assert again.returncode == 0, again.stderr[-3000:]
    first, second = probes(probe2, 2)
    for name, tensor in first["state"].items():
        assert torch.equal(tensor, second["state"][name]), name
    final = load_checkpoint(run)
    assert final["loop"]["step"] == 14 + 1 + 4 and len(final["trainer_ranks"]) == 2  # rest of epoch 3, epoch 4
    assert final["trainer_ranks"][1]["buffer"]["size"] == 64  # the extra process started from a copied, full buffer


# Each process's batch looks collapsed every other step, in turn: rank 0 on odd steps, rank 1 on even ones.
SPIKES = """
import os
import genframe_ebm.trainer as trainer

rank, real_loss, calls = int(os.environ.get("RANK", "0")), trainer.cd_loss, [0]

def turns(real_scores, fake_scores, alpha):
    calls[0] += 1
    parts = real_loss(real_scores, fake_scores, alpha)
    if calls[0] % 2 == (1 - rank % 2):
        parts["cdiv"] = parts["cdiv"] - 50.0
    return parts

trainer.cd_loss = turns
"""


def test_the_collapse_guard_counts_the_streak_of_the_whole_batch_across_processes(data_dir, tmp_path):
    # Counted per process, the streaks would be 1, 0, 1, 0...: never 2, and checkpoints put off for good.
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_spikes", "spikes", "gf_spikes_plugin", SPIKES)
    guard = ["callbacks.divergence_guard.limit=1", "callbacks.divergence_guard.patience=2",
             "callbacks.divergence_guard.on_divergence=stop"]
    sets = [arg for item in [*SETTINGS, *guard] for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(tmp_path / "run")], site, tmp_path)
    assert result.returncode != 0, result.stderr[-3000:]  # torchrun reports a failed process as its own exit 1
    assert "beyond callbacks.divergence_guard.limit=1 for 2 steps in a row at step 2 " in result.stderr


def test_evaluations_under_torchrun_reach_every_process_and_keep_the_best(data_dir, tmp_path, site):
    # Only rank 0 evaluates; the callbacks that act on an evaluation (keep-best) run on every process and
    # agree across them, so no process waits in a collective the others never enter.
    run, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    evaluation = ["callbacks.evaluation.every_steps=2", "callbacks.evaluation.n=16", "callbacks.evaluation.steps=3"]
    sets = [arg for item in [*SETTINGS, *evaluation] for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(run)], site, probe)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["status"] for r in probes(probe, 2)] == ["completed", "completed"]
    evals = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "eval/fd" in r]
    assert [r["step"] for r in evals] == [2, 4, 6, 8]  # each logged once, by rank 0
    best = min(evals, key=lambda r: r["eval/fd"])
    kept = load_checkpoint(run / "checkpoints" / "best.pt")
    assert kept["loop"]["step"] == best["step"]
    record = kept["callbacks"]["keep_best"]
    assert (record["best"], record["step"]) == (best["eval/fd"], best["step"])


# Rank 1's second step fails the trainer's own check (a score beyond trainer.score_limit); rank 0's is fine.
ONE_RANK_DIVERGES = """
import os
import genframe_ebm.trainer as trainer

rank, original, calls = int(os.environ.get("RANK", "0")), trainer.CDTrainer.check_divergence, [0]

def check(self, loss, real, fake):
    calls[0] += 1
    if rank == 1 and calls[0] == 2:
        real = real * 0 + 1e9
    return original(self, loss, real, fake)

trainer.CDTrainer.check_divergence = check
"""


def test_a_step_that_diverges_on_one_process_rolls_back_every_process(data_dir, tmp_path):
    # The processes agree that a step diverged before any of them shows the callbacks its signals: had the
    # failed one skipped a collective the others entered, they would wait in it for ever.
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_onerank", "onerank", "gf_onerank_plugin", ONE_RANK_DIVERGES)
    sets = [arg for item in SETTINGS for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(tmp_path / "run")], site, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "score 1e+09 beyond trainer.score_limit=10000 at step 2 (epoch 1); rolled back to step 0" in result.stderr
    assert "diverged on another process at step 2 (epoch 1); rolled back to step 0" in result.stderr
    state = load_checkpoint(tmp_path / "run")
    assert state["loop"]["step"] == 8 and state["loop"]["rollbacks"] == 1


# A callback that acts (not an observer) and fails on rank 0 alone, after its third step.
RANK_ZERO_CALLBACK_FAILS = """
import genframe

class FailsOnRankZero(genframe.Callback):
    name = "fails_on_rank_zero"

    def on_step_end(self, run, control):
        if run.rank == 0 and run.step == 3:
            raise RuntimeError("only here")

@genframe.hookimpl
def genframe_register(registry):
    registry.add("callback", FailsOnRankZero.name, FailsOnRankZero)
"""


def test_a_callback_failing_on_one_process_stops_every_process(data_dir, tmp_path):
    # The failure is agreed across processes like any request: every process stops together (with the
    # step-3 checkpoint), none is left waiting in a collective the failed one never reaches.
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_failing", "failing", "gf_failing_plugin", RANK_ZERO_CALLBACK_FAILS)
    sets = [arg for item in [*SETTINGS, 'callbacks.use=["fails_on_rank_zero"]'] for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(tmp_path / "run")], site, tmp_path)
    assert result.returncode != 0
    assert "Error: callback 'fails_on_rank_zero' failed in on_step_end: RuntimeError: only here" in result.stderr
    assert "Error: a callback failed on another process" in result.stderr
    assert load_checkpoint(tmp_path / "run")["loop"]["step"] == 3


# Every process's callback asks to stop after step 2, with its reason.
EVERY_RANK_STOPS = """
import genframe

class StopsAtTwo(genframe.Callback):
    name = "stops_at_two"

    def on_step_end(self, run, control):
        if run.step == 2:
            control.stop("enough at step two")

@genframe.hookimpl
def genframe_register(registry):
    registry.add("callback", StopsAtTwo.name, StopsAtTwo)
"""


def test_a_stop_is_announced_once_and_the_console_keeps_the_trainers_metric_order(data_dir, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_stops", "stops", "gf_stops_plugin", EVERY_RANK_STOPS)
    sets = [arg for item in [*SETTINGS, 'callbacks.use=["stops_at_two"]'] for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(tmp_path / "run")], site, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("stopping at step 2: enough at step two") == 1, result.stderr[-3000:]  # not per process
    assert load_checkpoint(tmp_path / "run")["loop"]["step"] == 2
    # the console line shows the averaged metrics in the order the trainer returns them, not sorted
    (first, *_) = [line for line in result.stderr.splitlines() if " it/s " in line and "loss=" in line]
    shown = [word.split("=")[0] for word in first.split() if "=" in word]
    assert shown == ["loss", "reg", "cdiv", "real", "fake"], first


def test_a_budget_in_minutes_gives_every_process_the_main_process_length(data_dir, tmp_path, site):
    # each process times its own first steps, and process 1's clock runs twice as fast here: had it kept its own
    # count it would stop at half the others' step (and leave them waiting in a collective)
    run, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    settings = [*SETTINGS, "data.limit=512", "trainer.epochs=50", "trainer.budget_minutes=0.05",
                "trainer.budget_probe_steps=12", "trainer.lr_decay_steps=100%", 'logging.loggers=["jsonl"]',
                "trainer.peer_timeout=30"]
    sets = [arg for item in settings for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(run)], site, probe, GF_SLOW_CLOCK_RANK="1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("genframe: trainer.budget_minutes=0.05:") == 1  # said once, by the main process
    state = load_checkpoint(run)
    assert 12 <= state["loop"]["step"] == state["loop"]["budget_steps"]
    rank0, rank1 = probes(probe, 2)
    assert rank0["status"] == rank1["status"] == "completed"
    for name, tensor in rank0["state"].items():
        assert torch.equal(tensor, rank1["state"][name]), name


def test_steps_pinned_over_a_budget_give_every_process_the_same_schedule(data_dir, tmp_path, site):
    # a recipe written in minutes, run with --set trainer.max_steps: every process knows the length at once, so
    # every process decays its rate over it (before, only the main one did, and the replicas drifted apart)
    run, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    settings = [*SETTINGS, "trainer.budget_minutes=5", "trainer.max_steps=48", "trainer.epochs=20", "trainer.lr=0.01",
                "trainer.lr_decay_steps=100%", "logging.log_every=8", 'logging.loggers=["jsonl"]']  # past the timing
    sets = [arg for item in settings for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(run)], site, probe)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("trainer.max_steps=48 sets the run's length") == 1  # said once, by the main process
    rank0, rank1 = probes(probe, 2)
    for name, tensor in rank0["state"].items():
        assert torch.equal(tensor, rank1["state"][name]), name


def test_two_torchrun_agents_on_one_machine_train_as_two_nodes_and_one_node_resumes(data_dir, tmp_path, site):
    # the c10d rendezvous on 127.0.0.1, as two machines would use it (docs/distributed.md), one process a node
    port = free_port()
    run, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    sets = [arg for item in [*SETTINGS, 'logging.loggers=["jsonl"]'] for arg in ("--set", item)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "GF_PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes",
               "-m", "genframe", "run", "ebm", *sets, "--run-dir", str(run)]
    nodes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sum(out.count("run completed:") for out, _ in outputs) == 1  # said once, by the process of rank 0
    rank0, rank1 = probes(probe, 2)
    assert rank0["world"] == rank1["world"] == 2
    for name, tensor in rank0["state"].items():
        assert torch.equal(tensor, rank1["state"][name]), name
    state = load_checkpoint(run)
    assert state["loop"]["step"] == 8 and len(state["trainer_ranks"]) == 2
    # one machine died: the other resumes the run alone, with the chains of both (pooled)
    resumed = genframe.train("ebm", overrides=["trainer.epochs=3", 'logging.loggers=["jsonl"]'], resume=run,
                             quiet=True)
    assert resumed.status == "completed" and resumed.step == 16  # 128 images a process, batch 16: 8 an epoch
    assert len(load_checkpoint(run)["trainer_ranks"]) == 1
    print(*[line for streams in outputs for text in streams for line in text.splitlines()
            if "starting in" in line or "completed" in line], f"resumed alone: {resumed.status} at step {resumed.step}",
          sep="\n")  # shown with -s, for reports


def test_a_run_resumed_on_more_processes_gives_each_its_own_chains(data_dir, tmp_path, site):
    # 2 processes, then 3: the saved replay buffers are pooled and split (Trainer.reshard_state), not copied
    run, probe = tmp_path / "run", tmp_path / "probe"
    probe.mkdir()
    sets = [arg for item in [*SETTINGS, 'logging.loggers=["jsonl"]'] for arg in ("--set", item)]
    result = torchrun(2, ["run", "ebm", *sets, "--run-dir", str(run)], site, probe)
    assert result.returncode == 0, result.stderr[-3000:]
    saved = torch.cat([s["buffer"]["storage"] for s in load_checkpoint(run)["trainer_ranks"]])
    again = torchrun(3, ["run", "ebm", "--resume", str(run), "--set", "trainer.epochs=3"], site, probe, GF_CHAINS="1")
    assert again.returncode == 0, again.stderr[-3000:]
    chains = [torch.load(probe / f"chains{r}.pt", weights_only=True).flatten(1) for r in range(3)]
    distinct = torch.unique(torch.cat(chains), dim=0).shape[0]
    assert distinct == sum(c.shape[0] for c in chains)  # no chain on two processes
    assert all(c.shape[0] > 0 for c in chains) and distinct == torch.unique(saved.flatten(1), dim=0).shape[0]
    print(f"2 -> 3 processes: {[c.shape[0] for c in chains]} chains, {distinct} distinct, of the "
          f"{saved.shape[0]} saved")  # shown with -s, for reports
