"""Assemble a run from a recipe and config, then train it: seed, device, run dir, resume, loop, hooks.

The loop is generic: it draws deterministic batches (the permutation of epoch ``e`` depends only on
the seed and ``e``, so a resumed run sees exactly the batches an uninterrupted one would), calls
``trainer.train_step``, and tells plugins through the lifecycle hooks. Checkpoints are written at
the end of every epoch, at the end of the run and when interrupted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genframe.checkpoint import CHECKPOINT_DIR, LAST_NAME, config_hash, load_checkpoint, save_checkpoint
from genframe.config import RecipeConfig, build_config, config_to_dict, deep_merge
from genframe.errors import CheckpointError, ConfigError, RunError
from genframe.plugins import PluginHost, get_host
from genframe.previews import Previewer
from genframe.runsetup import (
    build_dataset,
    epoch_permutation,
    new_run_dir,
    resolve_device,
    save_resolved_config,
)


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
    resumed: bool = False
    work_unit: tuple[str, float] | None = None  # e.g. ("img-steps", 7680.0) per step, for throughput
    rank: int = 0
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # loggers keep resumable ids here

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
        entry = self.host.registry.entry("recipe", recipe)
        self.recipe_name, self.recipe, self.plugin = recipe, entry.obj, entry.plugin
        self.checkpoint_state: dict[str, Any] | None = None
        if resume is not None:
            self.checkpoint_state = load_checkpoint(resume)
            if self.checkpoint_state["recipe"] != recipe:
                raise CheckpointError(f"{resume} is a checkpoint of recipe {self.checkpoint_state['recipe']!r}, "
                                      f"not {recipe!r}; run `genframe run {self.checkpoint_state['recipe']} --resume ...`")
            run_dir = Path(resume) if Path(resume).is_dir() else Path(resume).resolve().parent.parent
        saved = self.checkpoint_state["config"] if self.checkpoint_state else None
        self.config = _resolve_config(self.recipe.config_class, config, overrides, saved)
        if self.config.recipe not in (None, recipe):
            raise ConfigError(f"recipe: the config is for {self.config.recipe!r} but `genframe run {recipe}` was asked")
        self.run_dir = Path(run_dir) if run_dir is not None else new_run_dir(recipe)
        if resume is None and self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise RunError(f"run directory {self.run_dir} already exists; continue it with --resume {self.run_dir} "
                           "or choose another --run-dir")
        self.device = resolve_device(self.config.trainer.device)

    def _checkpoint_state(self, model, trainer, loop: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from genframe import __version__

        config = config_to_dict(self.config)
        return {
            "genframe_version": __version__,
            "recipe": self.recipe_name,
            "plugin": self.plugin,
            "plugin_version": next((p.version for p in self.host.plugins if p.name == self.plugin), "unknown"),
            "config": config,
            "config_hash": config_hash(config),
            "model": model.state_dict(),
            "trainer": trainer.state_dict(),
            "loop": loop,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "extra": dict(ctx.extra),
        }

    def run(self) -> RunResult:
        cfg, tcfg = self.config, self.config.trainer
        torch.manual_seed(cfg.seed)  # model init; every other random stream is seeded explicitly
        model = self.recipe.build_model(cfg).to(self.device)
        sampler = self.recipe.build_sampler(cfg)
        trainer = self.recipe.build_trainer(cfg, model, sampler, self.device)
        train_data = build_dataset(self.host.registry, cfg.data, "train").to(self.device)
        val_data = build_dataset(self.host.registry, cfg.data, "test").to(self.device)
        steps_per_epoch = len(train_data) // tcfg.batch_size  # the last partial batch is dropped: real and fake halves stay equal
        if steps_per_epoch == 0:
            raise ConfigError(f"trainer.batch_size: {tcfg.batch_size} is larger than the training data ({len(train_data)})")
        total = steps_per_epoch * tcfg.epochs if tcfg.max_steps is None else min(tcfg.max_steps, steps_per_epoch * tcfg.epochs)
        loop = {"epoch": 0, "batch": 0, "step": 0}
        ctx = RunContext(self.run_dir, self.recipe_name, cfg, self.device, steps_per_epoch, total,
                         work_unit=trainer.work_per_step(tcfg.batch_size))
        if self.checkpoint_state is not None:
            model.load_state_dict(self.checkpoint_state["model"])
            trainer.load_state_dict(self.checkpoint_state["trainer"])
            loop = dict(self.checkpoint_state["loop"])
            rng = self.checkpoint_state["rng"]  # global streams, for plugins that draw from them
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            ctx.extra.update(self.checkpoint_state.get("extra", {}))
            ctx.resumed = True
        ctx.step, ctx.epoch = loop["step"], loop["epoch"]
        if ctx.resumed and ctx.step >= total:
            raise RunError(f"run {self.run_dir} already finished at step {ctx.step}; to train further resume with "
                           f"--set trainer.epochs=N (now {tcfg.epochs}) or trainer.max_steps=N (now {tcfg.max_steps})")
        save_resolved_config(self.run_dir, config_to_dict(cfg), resumed_at=ctx.step if ctx.resumed else None)
        checkpoint_path = self.run_dir / CHECKPOINT_DIR / LAST_NAME

        def checkpoint() -> None:
            save_checkpoint(checkpoint_path, self._checkpoint_state(model, trainer, loop, ctx))
            self.host.hook.genframe_checkpoint(run=ctx, path=checkpoint_path, step=ctx.step)

        previews = Previewer(self.run_dir, cfg, model, sampler, trainer, self.device)

        names = [name for name in cfg.logging.loggers if not (self.quiet and name == "console")]
        loggers = [self.host.registry.get("logger", name)(ctx) for name in names]
        for index, logger in enumerate(loggers):
            self.host.pm.register(logger, name=f"logger-{index}-{id(logger)}")
        status, sums, count, last_metrics = "failed", {}, 0, {}
        self.host.hook.genframe_run_start(run=ctx)
        try:
            while loop["epoch"] < tcfg.epochs and ctx.step < total:
                ctx.epoch = loop["epoch"]
                order = epoch_permutation(len(train_data), cfg.seed, loop["epoch"], self.device)
                while loop["batch"] < steps_per_epoch and ctx.step < total:
                    start = loop["batch"] * tcfg.batch_size
                    batch = train_data.get_batch(order[start : start + tcfg.batch_size])
                    metrics = trainer.train_step(batch)
                    loop["batch"] += 1
                    ctx.step = loop["step"] = loop["step"] + 1
                    for key, value in metrics.items():  # accumulate on device: no per-step host sync
                        sums[key] = sums.get(key, 0.0) + (value.detach() if torch.is_tensor(value) else value)
                    count += 1
                    if ctx.step % cfg.logging.log_every == 0 or ctx.step == total:
                        last_metrics = {k: float(v) / count for k, v in sums.items()}
                        self.host.hook.genframe_log(run=ctx, step=ctx.step, metrics=last_metrics, images={})
                        sums, count = {}, 0
                    if cfg.logging.sample_every and ctx.step % cfg.logging.sample_every == 0:
                        self.host.hook.genframe_log(run=ctx, step=ctx.step, metrics={}, images=previews.grids(ctx.step))
                if loop["batch"] == steps_per_epoch:  # a whole epoch: validate, picture, checkpoint
                    loop["epoch"], loop["batch"] = loop["epoch"] + 1, 0
                    val = {f"val/{k}": float(v) for k, v in trainer.validate(val_data).items()}
                    val["epoch"] = loop["epoch"]
                    images = previews.grids(ctx.step) if not cfg.logging.sample_every else {}
                    self.host.hook.genframe_log(run=ctx, step=ctx.step, metrics=val, images=images)
                    last_metrics.update(val)
                    checkpoint()
            checkpoint()
            final = previews.grids(ctx.step) if previews.last_grid_step != ctx.step else {}
            self.host.hook.genframe_log(run=ctx, step=ctx.step, metrics={}, images={**final, **previews.chain(ctx.step)})
            status = "completed"
        except KeyboardInterrupt:
            status = "interrupted"
            checkpoint()
            raise
        finally:
            self.host.hook.genframe_run_end(run=ctx, status=status)
            for logger in loggers:
                self.host.pm.unregister(logger)
        return RunResult(self.run_dir, checkpoint_path, ctx.step, status, last_metrics)


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
