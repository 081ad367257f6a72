"""What hooks and callbacks see of a run (``RunContext``) and what ``train`` returns (``RunResult``).

A leaf module: it imports nothing from genframe at run time (the types below are for type checkers), so
any module may import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # names for type checkers only: importing them here would make a circle
    import torch

    from genframe.config.sections import RecipeConfig
    from genframe.contracts.components import Recipe, Sampler, Trainer
    from genframe.plugins.registry import Registry


@dataclass
class RunContext:
    """A run as listeners (callbacks and loggers) see it; the loop keeps the position up to date."""

    run_dir: Path
    recipe_name: str
    config: RecipeConfig  # as resolved: every value the run uses
    device: torch.device
    steps_per_epoch: int
    total_steps: int
    step: int = 0
    epoch: int = 0
    batch: int = 0  # steps done in the current epoch
    resumed: bool = False
    work_unit: tuple[str, float] | None = None  # e.g. ("img-steps", 7680.0) per step, for throughput
    rank: int = 0
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # loggers keep resumable ids here
    loggers: tuple[str, ...] = ()  # the loggers this process runs (the main process's, from logging.loggers)
    purpose: str = "train"  # "eval": a standalone evaluation reporting into the run's loggers
    model: torch.nn.Module | None = None  # the network being trained
    sampler: Sampler | None = None
    trainer: Trainer | None = None
    recipe: Recipe | None = None
    registry: Registry | None = None  # components by kind and name (datasets, for evaluations)
    position: dict[str, Any] = field(default_factory=dict)  # the loop's saved counters (RunState.loop)
    end_of_epoch: bool = False  # the step just done ended an epoch
    finished_early: bool = False  # a callback ended the run on its last good checkpoint
    sampling_model: Callable[[], torch.nn.Module] | None = None  # the network to sample and evaluate with
    example_shape: tuple[int, ...] | None = None  # the shape of one training example (None outside a training run)
    length_known: bool = True  # False while a trainer.budget_minutes run times its first steps

    @property
    def planned_steps(self) -> int | None:
        """The run's length in steps, for settings written as a share of it; None while a budget in minutes
        has not fixed it yet (``total_steps`` is then only the epochs' bound)."""
        return self.total_steps if self.length_known else None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def rollbacks(self) -> int:
        """Divergence rollbacks so far in this run (all of them, across resumes)."""
        return self.position.get("rollbacks", 0)

    @property
    def train_seconds(self) -> float:
        """Time spent in train steps (no evaluations, pictures or checkpoints), thrown-away steps included."""
        return self.position.get("train_seconds", 0.0)


@dataclass
class RunResult:
    """What ``train`` returns."""

    run_dir: Path
    checkpoint: Path
    step: int
    status: str
    metrics: dict[str, float]
    rank: int = 0
    stopped: str | None = None  # why the run ended before its last step (trainer.max_minutes, a callback)
