"""Assemble a run from a recipe and a config: resolve the config (defaults < saved < given < --set),
check the recipe, run directory and device before anything heavy starts, build the components and
callbacks, restore a checkpoint when resuming, then hand over to the loop.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from genframe.config.callbacks import chosen_callbacks
from genframe.config.sections import RecipeConfig, build_config, config_to_dict, deep_merge
from genframe.contracts.context import RunContext, RunResult
from genframe.contracts.errors import CheckpointError, ConfigError, GenframeError, RunError
from genframe.contracts.mistakes import check_components
from genframe.plugins.host import PluginHost, get_host
from genframe.plugins.registry import Choices, Registry
from genframe.training import distributed
from genframe.training.budget import budget_steps_on_resume
from genframe.training.checkpoint import CHECKPOINT_DIR, LAST_NAME, load_checkpoint, resolve_checkpoint, run_dir_of
from genframe.training.distributed import barrier, device_for, init_world, shutdown, torchrun_restart
from genframe.training.heartbeat import Heartbeat
from genframe.training.listeners import Listeners
from genframe.training.loop import TrainingLoop
from genframe.training.preflight import check_batch, check_memory, check_model_fits_data
from genframe.training.rundir import (
    RunDirLock,
    clean_leftovers,
    holds_checkpoint,
    read_status,
    remove_if_unused,
    set_aside_damaged_last,
    start_afresh,
    write_status,
)
from genframe.training.runsetup import (
    build_dataset,
    new_run_dir,
    resolve_device,
    save_resolved_config,
    training_data,
)
from genframe.training.runstate import Parts, RunState, stream_seed
from genframe.util.reproducible import reproducible_kernels
from genframe.util.signals import StartUp
from genframe.version import genframe_version


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
        self.checkpoint_state: dict[str, Any] | None = None
        self.end_of_run_done: list[str] = []  # end-of-run work done before a stop ("train_end", "pictures")
        self.restart = torchrun_restart()
        if self.restart and resume is None and run_dir is not None and holds_checkpoint(Path(run_dir)):
            # torchrun restarted the group after a failure (--max-restarts) with the first launch's command:
            # the run goes on from its last checkpoint, with its saved config (which holds the --config file's)
            resume, run_dir, config = run_dir, None, None
        self.resume_from = None if resume is None else resolve_checkpoint(resume)
        if self.resume_from is not None:
            self._read_resume_checkpoint()
            if self.restart and os.environ.get("RANK", "0") == "0":
                print(f"genframe: torchrun restart {self.restart}: resuming {run_dir_of(self.resume_from)} from step "
                      f"{self.checkpoint_state['loop']['step']}, its last checkpoint", file=sys.stderr, flush=True)
        # the plugins this run's bare names resolved to, followed on resume (a later plugin may offer one too)
        self.choices = Choices((self.checkpoint_state or {}).get("components"))
        with Registry.choosing(self.choices):
            self._assemble(recipe, config, overrides, run_dir, resume)

    def _assemble(self, recipe: str, config: Any, overrides: Iterable[str], run_dir: str | Path | None,
                  resume: str | Path | None) -> None:
        """Resolve the recipe and config, join torchrun's processes and check everything before any work."""
        entry = self.host.entry("recipe", recipe)
        self.recipe_name, self.recipe, self.plugin = entry.name, entry.obj, entry.plugin
        if self.resume_from is not None:
            self._check_resume_recipe()
            if self.resume_from.parent.name != CHECKPOINT_DIR:  # a loose file: its folder is no run directory
                raise RunError(f"{resume} is not in a run directory's {CHECKPOINT_DIR}/ folder, so there is no run to "
                               f"continue; copy it to NEWRUN/{CHECKPOINT_DIR}/{LAST_NAME} and resume NEWRUN")
            run_dir = run_dir_of(self.resume_from)
            self._warn_on_version_change(self.checkpoint_state)
        saved = self.checkpoint_state["config"] if self.checkpoint_state else None
        self.config = _resolve_config(self.recipe.config_class, config, overrides, saved)
        self.callback_specs = chosen_callbacks(self.config, self.host.registry)  # bad settings fail before anything starts
        if self.config.recipe not in (None, recipe, self.recipe_name):
            raise ConfigError(f"recipe: the config is for {self.config.recipe!r} but `genframe run {recipe}` was asked")
        self.device = resolve_device(self.config.trainer.device)
        self.world = init_world(self.config.trainer.device)  # torchrun: join the process group first
        self.device = device_for(self.world, self.device)
        if run_dir is None and self.world.active:
            raise RunError("under torchrun give --run-dir (or --resume): every process must write to the same place")
        # from here on, under torchrun, each process beats and watches the others (genframe.training.heartbeat)
        self.heartbeat = None
        if self.world.active:
            self.heartbeat = Heartbeat(self.world, self.config.trainer.peer_timeout, Path(run_dir), recipe,
                                       on_leave=self._record_failure,
                                       first_step_timeout=self.config.trainer.first_step_timeout).start()
        try:
            self._prepare(run_dir)
        except BaseException as error:
            self._stop_heartbeat(error)
            raise

    def _prepare(self, run_dir: str | Path | None) -> None:
        """Check the config against the data and the machine, then take the run directory."""
        # before the run directory and any allocation: a config that cannot run says so in one line
        for logger in self.config.logging.loggers:  # an unknown or unusable one is an error now, not after step 0
            check = getattr(self.host.entry("logger", logger).obj, "check", None)  # Logger.check, if it has one
            if check is not None:
                check(self.config)
        if getattr(self.config.data, "path", None):  # saved absolute: a resume from another folder finds the data
            data = self.config.data.model_copy(update={"path": str(Path(self.config.data.path).expanduser().resolve())})
            self.config = self.config.model_copy(update={"data": data})
        self.datasets = tuple(build_dataset(self.host.registry, self.config.data, split) for split in ("train", "test"))
        shape = self.datasets[0].example_shape
        self.config = self.recipe.fit_to_data(self.config, shape)  # e.g. the model's input size follows the data
        check_model_fits_data(self.recipe, self.config, shape, self.config.data.name)
        check_batch(self.config, len(self.datasets[0]), self.world.world_size)  # before memory: the plainer reason
        check_memory(self.recipe, self.config, shape, self.device)
        self.run_dir, self.made_run_dir = self._make_run_dir(run_dir)
        self.lock = RunDirLock(self.run_dir)
        self._take_run_dir()
        barrier(self.world)  # every process has checked before rank 0 writes anything

    def _make_run_dir(self, run_dir: str | Path | None) -> tuple[Path, bool]:
        """The run directory, and whether this run made it; an automatic name is claimed by making it, so two
        runs started in the same second never share one."""
        try:
            if run_dir is not None:
                made = not Path(run_dir).exists()
                Path(run_dir).mkdir(parents=True, exist_ok=True)
                return Path(run_dir), made
            while True:
                candidate = new_run_dir(self.recipe_name)
                candidate.parent.mkdir(parents=True, exist_ok=True)
                try:
                    candidate.mkdir()
                    return candidate, True
                except FileExistsError:  # another run claimed it between the look and the make
                    continue
        except OSError as exc:
            raise RunError(f"cannot create run directory {run_dir or 'under runs/'}: {exc.strerror or exc}; "
                           "choose another --run-dir") from None

    def _read_resume_checkpoint(self) -> None:
        checkpoint = self.resume_from
        self.resume_stamp = checkpoint.stat().st_mtime_ns
        self.checkpoint_state = load_checkpoint(checkpoint)

    def _check_resume_recipe(self) -> None:
        made_by, plugin = self.checkpoint_state["recipe"], self.checkpoint_state.get("plugin")
        if made_by != self.recipe_name:
            raise CheckpointError(f"{self.resume_from} is a checkpoint of recipe {made_by!r}, not "
                                  f"{self.recipe_name!r}; run `genframe run {made_by} --resume ...`")
        if plugin and plugin != self.plugin:  # another plugin's recipe of the same name: never switch silently
            raise CheckpointError(f"{self.resume_from} was made by plugin {plugin!r}'s recipe {made_by!r}, not plugin "
                                  f"{self.plugin!r}'s; install {plugin!r} and run `genframe run {plugin}:{made_by} "
                                  "--resume ...`")

    def _take_run_dir(self) -> None:
        """Lock the run directory (rank 0, for the whole run) and ready it: leftovers of a killed writer go,
        a fresh run into a dead end (no checkpoint) starts afresh; every process learns the outcome."""
        problem, reload = None, False
        if self.world.is_main:
            try:
                self.lock.acquire()
                clean_leftovers(self.run_dir)
                if self.resume_from is None:
                    if holds_checkpoint(self.run_dir):
                        raise RunError(f"run directory {self.run_dir} already exists; continue it with --resume "
                                       f"{self.run_dir} or choose another --run-dir")
                    start_afresh(self.run_dir)
                else:
                    reload = self.resume_from.stat().st_mtime_ns != self.resume_stamp  # saved since it was read
                    set_aside_damaged_last(self.run_dir, self.resume_from)
            except (RunError, CheckpointError) as exc:
                problem = exc
            except OSError as exc:  # a read-only or full file system
                problem = RunError(f"cannot write run directory {self.run_dir}: {exc.strerror or exc}; free disk "
                                   "space, fix its permissions or choose another --run-dir")
        if self.world.active:
            problem, reload = distributed.from_main((problem, reload), self.world)
        if problem is not None:
            self.lock.release()
            raise problem
        if reload:
            self._read_resume_checkpoint()
            self._check_resume_recipe()  # another writer saved since it was read: every process takes the newest

    def release(self) -> None:
        """Let another command write the run directory (called when the run ends, however it ends); one this
        run made and left empty (it failed before writing anything) goes too."""
        self.lock.release()
        if self.made_run_dir and self.world.is_main:
            remove_if_unused(self.run_dir)

    @property
    def plugin_version(self) -> str:
        return next((p.version for p in self.host.plugins if p.name == self.plugin), "unknown")

    def _warn_on_version_change(self, state: dict[str, Any]) -> None:
        made_by = {"genframe": state.get("genframe_version"), self.plugin: state.get("plugin_version")}
        now = {"genframe": genframe_version(), self.plugin: self.plugin_version}
        changed = [f"{name} {made_by[name]} -> {now[name]}" for name in now if made_by[name] != now[name]]
        if changed:
            warnings.warn(f"genframe: resuming a checkpoint made by other versions ({', '.join(changed)}); "
                          "results may differ from an uninterrupted run", UserWarning, stacklevel=3)

    def build(self) -> Parts:
        """The components, datasets and callbacks, in the order that keeps runs reproducible."""
        cfg, device, world = self.config, self.device, self.world
        train_data, val_data = (data.to(device) for data in self.datasets)
        torch.manual_seed(cfg.seed)  # model init; every other random stream is seeded explicitly
        model = self.recipe.build_model(cfg).to(device)
        sampler = self.recipe.build_sampler(cfg)
        trainer = self.recipe.build_trainer(cfg, model, sampler, device)
        check_components(self.recipe, sampler, trainer)  # methods of genframe 0.1 that nothing calls now
        train_data = training_data(train_data, trainer, self.recipe_name, cfg.data.name)
        # torchrun: each process takes every world_size-th example of the epoch's order; the last
        # partial batch is dropped (every process steps alike)
        steps_per_epoch = len(train_data) // world.world_size // cfg.trainer.batch_size
        if steps_per_epoch == 0:
            raise ConfigError(f"trainer.batch_size: {cfg.trainer.batch_size} is larger than the training data "
                              f"({len(train_data)} examples)")
        ctx = RunContext(self.run_dir, self.recipe_name, cfg, device, steps_per_epoch, 0,
                         work_unit=trainer.work_per_step(cfg.trainer.batch_size), rank=world.rank,
                         world_size=world.world_size, model=model, sampler=sampler, trainer=trainer,
                         recipe=self.recipe, registry=self.host.registry,
                         example_shape=tuple(self.datasets[0].example_shape))
        callbacks = Listeners(self.callback_specs, ctx)
        ctx.sampling_model = functools.partial(callbacks.sampling_model, model)
        state = RunState(ctx, trainer, callbacks, self.plugin, self.plugin_version, components=self.choices)
        if self.checkpoint_state is not None:
            state.restore(self.checkpoint_state, steps_per_epoch)
            callbacks.load_state_dict(self.checkpoint_state.get("callbacks", {}))
            ctx.extra.update(self.checkpoint_state.get("extra", {}))
            ctx.resumed = True
        elif world.active and world.rank > 0:
            trainer.reseed(stream_seed(cfg.seed, world.rank))
        # steps still to go: the rest of this epoch and the epochs after it (counted with the present
        # number of processes, so a run resumed on more or fewer processes still ends after trainer.epochs)
        loop, tcfg = state.loop, cfg.trainer
        total = loop["step"] + max((tcfg.epochs - loop["epoch"]) * steps_per_epoch - loop["batch"], 0)
        ctx.total_steps = total if tcfg.max_steps is None else min(total, tcfg.max_steps)
        if tcfg.budget_minutes is not None and tcfg.max_steps is not None:
            if world.is_main:  # a notice, not a warning: pinning the steps of a recipe in minutes is documented
                print(f"genframe: trainer.max_steps={tcfg.max_steps} sets the run's length; the recipe's "
                      f"trainer.budget_minutes={tcfg.budget_minutes:g} is not used (--set trainer.max_steps=null "
                      "trains for minutes)", file=sys.stderr, flush=True)
        elif tcfg.budget_minutes is not None:
            fixed, changed = budget_steps_on_resume(tcfg, loop)
            if fixed is not None:  # fixed before: a resume keeps it (or a new budget_minutes moves it)
                ctx.total_steps = min(ctx.total_steps, fixed)
                if changed and world.is_main:
                    print(f"genframe: {changed}", file=sys.stderr, flush=True)
            elif ctx.total_steps - loop["step"] > tcfg.budget_probe_steps:  # fixed after the first steps (budget.py)
                ctx.length_known = False
        if ctx.length_known:
            trainer.set_run_length(ctx.total_steps)
        status = read_status(self.run_dir) if ctx.resumed else None
        out_of_time = tcfg.max_minutes is not None and loop["train_seconds"] >= 60 * tcfg.max_minutes
        ended_here = loop["step"] >= ctx.total_steps or out_of_time  # (a resume may ask for more steps)
        if status and status.get("phase") == "end of run" and status.get("step") == loop["step"] and ended_here:
            self.end_of_run_done = list(status.get("end_of_run_done", []))  # stopped after training: finish it
            ctx.total_steps = loop["step"]
        elif ctx.resumed and loop["step"] >= ctx.total_steps:
            raise RunError(f"run {self.run_dir} already finished at step {loop['step']}; to train further "
                           f"resume with --set trainer.epochs=N (now {tcfg.epochs}) or trainer.max_steps=N "
                           f"(now {tcfg.max_steps})"
                           + (f" or trainer.budget_minutes=M (now {tcfg.budget_minutes:g})" if tcfg.budget_minutes
                              else ""))
        elif ctx.resumed and out_of_time:
            raise RunError(f"run {self.run_dir} already trained {loop['train_seconds'] / 60:.4g} minutes, its "
                           f"trainer.max_minutes={tcfg.max_minutes:g}; to train further resume with "
                           f"--set trainer.max_minutes=M, M above {loop['train_seconds'] / 60:.4g}")
        if world.active:
            distributed.broadcast_parameters(model)
        if world.is_main:
            save_resolved_config(self.run_dir, config_to_dict(cfg), resumed_at=loop["step"] if ctx.resumed else None)
        return Parts(model, sampler, trainer, train_data, val_data, callbacks, ctx, state, steps_per_epoch,
                     self.run_dir / CHECKPOINT_DIR / LAST_NAME)

    def run(self) -> RunResult:
        try:
            with reproducible_kernels(), Registry.choosing(self.choices):  # a resumed GPU run matches a straight one
                result = TrainingLoop(self, self.build()).run()
            # Leave together: a process that tears down gloo and exits while rank 0 is still writing
            # its last checkpoint now and then aborts at interpreter exit ("terminate called without
            # an active exception": 2 of 41 two-process launches here; 0 of 100 with this barrier;
            # research/scripts/torchrun_exit.py). Only on success: after an error the other processes may
            # be in another collective, or gone.
            barrier(self.world)
            self._stop_heartbeat(None)
            return result
        except BaseException as error:
            self._stop_heartbeat(error)
            raise
        finally:
            shutdown(self.world)
            self.release()

    def _stop_heartbeat(self, error: BaseException | None) -> None:
        """Stop beating (once); a failure of this process alone is announced to the others, and a collective
        that broke because a peer left is reported with that peer's reason, in one line."""
        heartbeat, self.heartbeat = self.heartbeat, None
        if heartbeat is None:
            return
        peer = heartbeat.stop(error)
        if peer is not None and error is not None and not isinstance(error, (GenframeError, KeyboardInterrupt)):
            raise RunError(peer) from None

    def _record_failure(self, reason: str) -> None:
        """The heartbeat is ending this process (a peer stalled, died or failed): rank 0 records it."""
        if self.world.is_main and getattr(self, "lock", None) is not None and self.lock.held:
            status = read_status(self.run_dir) or {}
            fields = {k: v for k, v in status.items() if k in ("step", "total_steps", "end_of_run_done", "phase")}
            write_status(self.run_dir, "failed", **fields, message=reason)


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
    with StartUp():  # a signal before the loop's own handler is held for it (genframe.util.signals)
        return TrainingRun(recipe, config, overrides, run_dir, resume, quiet=quiet).run()
