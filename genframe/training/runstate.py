"""A run's state as a checkpoint holds it, and restoring it: weights, trainer (per process), callbacks,
the loop position, metric sums not yet logged and the global RNG.

Exact resume: the order of epoch ``e`` depends only on (seed, e), the trainer saves its own random
streams and the callbacks their own state, so a run stopped at any checkpoint and resumed logs and
trains exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genframe.config.sections import config_to_dict
from genframe.contracts.components import Dataset, Sampler, Trainer
from genframe.contracts.context import RunContext
from genframe.contracts.errors import CheckpointError
from genframe.plugins.registry import Choices
from genframe.training.checkpoint import config_hash
from genframe.training.listeners import Listeners
from genframe.version import genframe_version


def stream_seed(seed: int, rank: int) -> int:
    """The seed of torchrun process ``rank``'s own random streams (rank 0 keeps the single-process ones)."""
    return seed * 1_000_003 + rank


@dataclass
class RunState:
    """What a checkpoint holds beside the components: the loop position and the unlogged metric sums."""

    ctx: RunContext
    trainer: Trainer
    callbacks: Listeners
    plugin: str
    plugin_version: str
    components: Choices | None = None  # which plugin's component each bare name was (genframe.plugins.registry)
    loop: dict[str, Any] = field(default_factory=dict)
    sums: dict[str, Any] = field(default_factory=dict)
    count: int = 0

    def __post_init__(self) -> None:
        self.loop = {"epoch": 0, "batch": 0, "step": 0, "rollbacks": 0, "train_seconds": 0.0,
                     "world_size": self.ctx.world_size, **self.loop}
        self.ctx.position = self.loop  # one set of counters: restore() updates it in place

    def pending(self) -> dict[str, Any]:
        """This process's metric sums not yet logged (each process keeps its own; they are averaged at logging)."""
        # on the CPU: rank 0 gathers every process's, and a process's device may not be its own
        return {"sums": {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in self.sums.items()},
                "count": self.count}

    def checkpoint(self, trainer_states: list[dict[str, Any]],
                   pending_states: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The whole state to save; ``trainer_states`` and ``pending_states`` hold each process's trainer
        state and unlogged metric sums (torchrun; by default this process's sums alone)."""
        ctx, config = self.ctx, config_to_dict(self.ctx.config)
        pending_states = pending_states or [self.pending()]
        state = {
            "genframe_version": genframe_version(), "recipe": ctx.recipe_name, "plugin": self.plugin,
            "plugin_version": self.plugin_version, "config": config, "config_hash": config_hash(config),
            "model": ctx.model.state_dict(),
            "trainer": trainer_states[0],
            "trainer_ranks": trainer_states,  # each process's buffers and random streams
            "callbacks": self.callbacks.state_dict(),
            "loop": dict(self.loop),
            "pending": pending_states[0],  # rank 0's, as checkpoints before "pending_ranks" held
            "pending_ranks": pending_states,  # a resumed process logs its own sums, as it would have
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "extra": dict(ctx.extra),
            "components": {**self.components.recorded, **self.components.used} if self.components else {},
        }
        sampling = self.callbacks.sampling_model()
        if sampling is not None:  # what `genframe sample` and `eval` load
            state["sampling_model"] = sampling.state_dict()
        return state

    def restore(self, state: dict[str, Any], steps_per_epoch: int) -> None:
        """Weights, trainer, loop position and RNG from ``state`` (callbacks: see ``Listeners``)."""
        ctx = self.ctx
        ranks = state.get("trainer_ranks") or [state["trainer"]]
        try:
            # another number of processes: the trainer splits or pools what each saved process held
            own = ranks[ctx.rank] if len(ranks) == ctx.world_size else self.trainer.reshard_state(
                ranks, ctx.rank, ctx.world_size)
            ctx.model.load_state_dict(state["model"])
            self.trainer.load_state_dict(own)
        except (RuntimeError, KeyError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise CheckpointError(f"the checkpoint does not fit this config's model or trainer ({reason}); "
                                  "resume without changing model settings, or start a new run") from None
        if ctx.rank >= len(ranks):
            self.trainer.reseed(stream_seed(ctx.config.seed, ctx.rank))
        loop = {"rollbacks": 0, "train_seconds": 0.0, "world_size": 1, **state["loop"]}
        self.loop.clear()  # in place: the loop holds this dict
        self.loop.update(loop)
        saved_world = self.loop["world_size"]
        if saved_world != ctx.world_size:  # keep the position as examples seen, not batches
            seen = self.loop["batch"] * saved_world
            self.loop["batch"] = seen // ctx.world_size
            if self.loop["batch"] >= steps_per_epoch:
                self.loop["epoch"], self.loop["batch"] = self.loop["epoch"] + 1, 0
            self.loop["world_size"] = ctx.world_size
        pending_ranks = state.get("pending_ranks") or [state.get("pending", {"sums": {}, "count": 0})]
        pending = pending_ranks[ctx.rank % len(pending_ranks)]  # more processes than saved: copies, like the trainer
        self.sums = {k: (v.to(ctx.device) if torch.is_tensor(v) else v) for k, v in pending["sums"].items()}
        self.count = pending["count"]
        torch.set_rng_state(state["rng"]["torch"])  # global streams, for plugins that draw from them
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        ctx.step, ctx.epoch, ctx.batch = self.loop["step"], self.loop["epoch"], self.loop["batch"]


@dataclass
class Parts:
    """Everything the loop works with, built and (when resuming) restored."""

    model: torch.nn.Module
    sampler: Sampler
    trainer: Trainer
    train_data: Dataset
    val_data: Dataset
    callbacks: Listeners
    ctx: RunContext
    state: RunState
    steps_per_epoch: int
    checkpoint_path: Path
