"""Data-parallel training under ``torchrun``: process group, gradient averaging, shared decisions.

Started by ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK in the environment), genframe trains one
replica per process: NCCL on GPUs, gloo on CPU. Gradients are averaged across processes as they
are accumulated (a hook per parameter, as DistributedDataParallel does), instead of wrapping the
model in DDP: the Langevin sampler runs the same network with frozen weights and input gradients,
which DDP's reducer does not allow, and a hook leaves every trainer's code unchanged.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from genframe.contracts.errors import RunError
from genframe.util.text import one_line


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = World()


# How long a collective may wait before gloo/NCCL give up. The processes wait in one while rank 0
# alone evaluates or draws the end-of-run pictures: 10000 samples take about 20 s to a few minutes on
# a CPU (research/reports/fast-recipe.md), longer chains or larger n many times that. Stalled and dead
# processes are noticed by the heartbeat (trainer.peer_timeout, genframe.training.heartbeat), so this is only
# the backstop should the heartbeat itself fail: long enough for any evaluation a run asks for.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=6)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def torchrun_restart() -> int:
    """Which restart of its group torchrun made this process (``--max-restarts``): 0 for the first launch. Also
    in a group of one process: an elastic run (``--nnodes 1:2``) restarted on the one node left is one."""
    started_by_agent = all(name in os.environ for name in ("TORCHELASTIC_RUN_ID", "GROUP_RANK", "WORLD_SIZE"))
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) if started_by_agent else 0
    except ValueError:
        return 0


def launch_id() -> str:
    """This launch of the group: torchrun's run id, its restart count (new at each restart after a failure) and the
    group's size (new when an elastic run grows or shrinks, which restarts the group with the same count)."""
    run, restart = os.environ.get("TORCHELASTIC_RUN_ID", "none"), os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return f"{run}/{restart}/{os.environ.get('WORLD_SIZE', '1')}"


def _launch_store(timeout: datetime.timedelta) -> dist.Store | None:
    """torchrun's agent store, with a namespace of this launch's own; None where each launch has a fresh store.

    The agent keeps one store across ``--max-restarts``, and the process group's keys (each process's address)
    are the same in every launch, so a restarted process could read a dead one's address and hang connecting to
    it, now and then, as the two raced (pytorch/pytorch#135712). A namespace per launch leaves nothing stale."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          int(os.environ["WORLD_SIZE"]), is_master=False, timeout=timeout)
    return dist.PrefixStore(f"genframe/process-group/{launch_id()}", store)


def init_world(device_name: str) -> World:
    """Join the process group torchrun set up (idempotent); a single process gets ``SINGLE``."""
    if not launched_by_torchrun():
        return SINGLE
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
        if use_cuda:
            torch.cuda.set_device(local_rank)
        try:
            store = _launch_store(COLLECTIVE_TIMEOUT)
            if store is None:
                dist.init_process_group("nccl" if use_cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
            else:
                dist.init_process_group("nccl" if use_cuda else "gloo", store=store, rank=rank, world_size=world_size,
                                        timeout=COLLECTIVE_TIMEOUT)
        except Exception as exc:  # a wrong MASTER_ADDR, a port in use, a peer that never came
            raise RunError(f"could not join the torchrun process group (rank {rank} of {world_size}): "
                           f"{one_line(exc)[:300]}") from None
    return World(rank, world_size, local_rank)


def device_for(world: World, device: torch.device) -> torch.device:
    """Each process on a GPU of its own (``cuda:LOCAL_RANK``) when training on CUDA."""
    if world.active and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def average_gradients_on_backward(model: torch.nn.Module, world: World) -> list[Any]:
    """Average each parameter's gradient across processes as soon as backward has accumulated it."""
    def hook(param: torch.Tensor) -> None:
        dist.all_reduce(param.grad)
        param.grad.div_(world.world_size)

    return [p.register_post_accumulate_grad_hook(hook) for p in model.parameters() if p.requires_grad]


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Every replica starts from rank 0's weights and buffers."""
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


def any_rank(flags: list[bool], device: torch.device) -> list[bool]:
    """Element-wise OR of boolean flags across processes (divergence, stop signals): all decide alike."""
    tensor = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def from_main(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every process (e.g. what only the main process measured)."""
    holder = [obj if world.is_main else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def mean_across(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics across processes; they come back in ``values``' order (the trainer's, which the
    console shows), though reduced in sorted order, the same on every process whatever order each met them in."""
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    averaged = {k: float(v) / dist.get_world_size() for k, v in zip(keys, tensor.tolist())}
    return {k: averaged[k] for k in values}


def gather_to_main(obj: Any, world: World) -> list[Any] | None:
    """Every process's ``obj`` on rank 0 (a list by rank), ``None`` elsewhere."""
    gathered = [None] * world.world_size if world.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def mean_of_tensors(values: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """Average scalar tensors (or numbers) across processes, in one collective, without a host sync; the
    keys keep their order (every process runs the same code, so it is the same everywhere)."""
    keys = list(values)
    if not keys:
        return {}
    stacked = torch.stack([torch.as_tensor(values[k], device=device).detach().float().reshape(()) for k in keys])
    dist.all_reduce(stacked)
    stacked /= dist.get_world_size()
    return dict(zip(keys, stacked.unbind()))
