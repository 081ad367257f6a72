"""How a process torchrun started tells its launch apart (quick: no process is started): a restart, and the
namespace its process group keeps in torchrun's store."""

from __future__ import annotations

import datetime

import pytest
import torch.distributed as dist

from genframe.training.distributed import _launch_store, torchrun_restart

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this PyTorch build has no torch.distributed")


def test_a_restart_is_seen_in_a_group_of_one_process_too(monkeypatch):
    # an elastic run restarted on the one node left has one process; it must resume all the same
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("GROUP_RANK", "0")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    assert torchrun_restart() == 2
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")  # a count left in the environment of a process no agent started
    assert torchrun_restart() == 0


def test_each_torchrun_launch_keys_its_process_group_apart_in_the_agents_store(monkeypatch):
    # torchrun's agent keeps its store across restarts; the process group's keys must not be read from a failed
    # launch (a dead process's address) by a restarted one, nor by a group grown or shrunk with the same count
    agent = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(agent.port))
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    stores = {}
    for restart, world in (("0", "2"), ("1", "2"), ("1", "3")):
        monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", restart)
        monkeypatch.setenv("WORLD_SIZE", world)
        stores[restart, world] = _launch_store(datetime.timedelta(seconds=5))
    stores["0", "2"].set("rank_0", "the first launch's address")
    assert not stores["1", "2"].check(["rank_0"]) and not stores["1", "3"].check(["rank_0"])
    assert agent.check(["genframe/process-group/job/0/2/rank_0"])  # in the first launch's namespace
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # a fresh store each launch: torch's own rendezvous
    assert _launch_store(datetime.timedelta(seconds=5)) is None
