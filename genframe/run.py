"""Assemble a run from a recipe and a config: resolve the config (defaults < saved < given < --set),
check the recipe, run directory and device before anything heavy starts, then hand over to the loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genframe.checkpoint import load_checkpoint, run_dir_of
from genframe.config import RecipeConfig, build_config, config_to_dict, deep_merge
from genframe.errors import CheckpointError, ConfigError, RunError
from genframe.plugins import PluginHost, get_host
from genframe.distributed import barrier, device_for, init_world, shutdown
from genframe.runsetup import new_run_dir, resolve_device


@dataclass
class RunContext:
    """What lifecycle hooks see of a run."""

    run_dir: Path
    recipe_name: str
    config: RecipeConfig
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
    purpose: str = "train"  # "eval": a standalone evaluation reporting into the run's loggers
    model: Any = None  # the network being trained, for callbacks (EMA, probes, ...)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class RunResult:
    """What ``train`` returns."""

    run_dir: Path
    checkpoint: Path
    step: int
    status: str
    metrics: dict[str, float]
    rank: int = 0


def _resolve_config(
    config_class: type[RecipeConfig], config: Any, overrides: Iterable[str], saved: dict[str, Any] | None
) -> RecipeConfig:
    """Defaults < saved config (when resuming) < ``config`` < overrides."""
    if config is not None and not isinstance(config, (RecipeConfig, Mapping)):  # a file path
        if saved is not None:
            raise ConfigError("--config cannot be combined with --resume: the run's saved config is used; "
                              "change single settings with --set")
        return build_config(config_class, path=config, overrides=overrides)
    data = config_to_dict(config) if isinstance(config, RecipeConfig) else dict(config or {})
    return build_config(config_class, data=deep_merge(saved or {}, data), overrides=overrides)


class TrainingRun:
    """One training run, assembled from a recipe and config; ``train()`` below is the usual way in."""

    def __init__(
        self,
        recipe: str,
        config: RecipeConfig | Mapping[str, Any] | str | Path | None = None,
        overrides: Iterable[str] = (),
        run_dir: str | Path | None = None,
        resume: str | Path | None = None,
        host: PluginHost | None = None,
        quiet: bool = False,
    ) -> None:
        self.host = host or get_host()
        self.quiet = quiet
        entry = self.host.entry("recipe", recipe)
        self.recipe_name, self.recipe, self.plugin = recipe, entry.obj, entry.plugin
        self.checkpoint_state: dict[str, Any] | None = None
        if resume is not None:
            self.checkpoint_state = load_checkpoint(resume)
            if self.checkpoint_state["recipe"] != recipe:
                raise CheckpointError(f"{resume} is a checkpoint of recipe {self.checkpoint_state['recipe']!r}, "
                                      f"not {recipe!r}; run `genframe run {self.checkpoint_state['recipe']} --resume ...`")
            run_dir = Path(resume) if Path(resume).is_dir() else run_dir_of(resume)
            self._warn_on_version_change(self.checkpoint_state)
        saved = self.checkpoint_state["config"] if self.checkpoint_state else None
        self.config = _resolve_config(self.recipe.config_class, config, overrides, saved)
        if self.config.recipe not in (None, recipe):
            raise ConfigError(f"recipe: the config is for {self.config.recipe!r} but `genframe run {recipe}` was asked")
        self.device = resolve_device(self.config.trainer.device)
        self.world = init_world(self.config.trainer.device)  # torchrun: join the process group first
        self.device = device_for(self.world, self.device)
        if run_dir is None and self.world.active:
            raise RunError("under torchrun give --run-dir (or --resume): every process must write to the same place")
        self.run_dir = Path(run_dir) if run_dir is not None else new_run_dir(recipe)
        if resume is None and self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise RunError(f"run directory {self.run_dir} already exists; continue it with --resume {self.run_dir} "
                           "or choose another --run-dir")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create run directory {self.run_dir}: {exc.strerror or exc}; "
                           "choose another --run-dir") from None
        barrier(self.world)  # every process has checked before rank 0 writes anything

    def _warn_on_version_change(self, state: dict[str, Any]) -> None:
        from genframe import __version__

        made_by = {"genframe": state.get("genframe_version"), self.plugin: state.get("plugin_version")}
        now = {"genframe": __version__,
               self.plugin: next((p.version for p in self.host.plugins if p.name == self.plugin), "unknown")}
        changed = [f"{name} {made_by[name]} -> {now[name]}" for name in now if made_by[name] != now[name]]
        if changed:
            warnings.warn(f"genframe: resuming a checkpoint made by other versions ({', '.join(changed)}); "
                          "results may differ from an uninterrupted run", UserWarning, stacklevel=3)

    def run(self) -> RunResult:
        from genframe.loop import TrainingLoop

        try:
            result = TrainingLoop(self).run()
            # Leave together: a process that tears down gloo and exits while rank 0 is still writing
            # its last checkpoint now and then aborts at interpreter exit ("terminate called without
            # an active exception": 2 of 41 two-process launches here; 0 of 100 with this barrier;
            # benchmarks/torchrun_exit.py). Only on success: after an error the other processes may
            # be in another collective, or gone.
            barrier(self.world)
            return result
        finally:
            shutdown(self.world)


def train(
    recipe: str,
    config: RecipeConfig | Mapping[str, Any] | str | Path | None = None,
    overrides: Iterable[str] = (),
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    quiet: bool = False,
) -> RunResult:
    """Train ``recipe`` with ``config`` (a config object, a dict, a file path or None for defaults).

    ``overrides`` are ``section.key=value`` strings; ``resume`` is a run directory or checkpoint
    to continue, using its saved config (overrides still apply, e.g. ``trainer.epochs=10``).
    ``quiet`` leaves out the console logger.
    """
    return TrainingRun(recipe, config, overrides, run_dir, resume, quiet=quiet).run()
