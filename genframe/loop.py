"""The generic training loop: deterministic batches, train steps, logging, checkpoints, pictures,
signals and the divergence guard, for any recipe.

Exact resume: the order of epoch ``e`` depends only on (seed, e); the trainer saves its own RNG
streams; the checkpoint also holds the loop position and the metric sums not yet logged, so a run
stopped at any checkpoint and resumed logs and trains exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from contextlib import contextmanager
from typing import Any

import torch

from genframe import distributed
from genframe.checkpoint import BEST_NAME, CHECKPOINT_DIR, LAST_NAME, config_hash, load_checkpoint, save_checkpoint
from genframe.config import config_to_dict
from genframe.errors import CheckpointError, ConfigError, DivergenceError, RunError, RunInterrupted
from genframe.plugins import attached_loggers
from genframe.previews import Previewer
from genframe.run import RunContext, RunResult, TrainingRun
from genframe.runsetup import build_dataset, epoch_permutation, rollback_seed, save_resolved_config
from genframe.signals import StopSignals


class DivergenceWarning(UserWarning):
    """Training diverged and was rolled back."""


class TrainingLoop:
    def __init__(self, run: TrainingRun) -> None:
        self.run_spec, self.host, self.world = run, run.host, run.world
        cfg, tcfg, device = run.config, run.config.trainer, run.device
        self.cfg, self.tcfg, self.hook = cfg, tcfg, run.host.hook
        torch.manual_seed(cfg.seed)  # model init; every other random stream is seeded explicitly
        self.model = run.recipe.build_model(cfg).to(device)
        self.sampler = run.recipe.build_sampler(cfg)
        self.trainer = run.recipe.build_trainer(cfg, self.model, self.sampler, device)
        self.train_data = build_dataset(run.host.registry, cfg.data, "train").to(device)
        self.val_data = build_dataset(run.host.registry, cfg.data, "test").to(device)
        # torchrun: each process takes every world_size-th example of the epoch's order; the last
        # partial batch is dropped (real and fake halves of the CD loss stay equal)
        self.steps_per_epoch = len(self.train_data) // self.world.world_size // tcfg.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"trainer.batch_size: {tcfg.batch_size} is larger than the training data "
                              f"({len(self.train_data)} examples)")
        self.total = 0  # set once the loop position is known (a resume may change steps per epoch)
        self.loop: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "rollbacks": 0, "train_seconds": 0.0,
                                     "world_size": self.world.world_size}
        self.sums: dict[str, Any] = {}
        self.count = 0
        self.ctx = RunContext(run.run_dir, run.recipe_name, cfg, device, self.steps_per_epoch, self.total,
                              work_unit=self.trainer.work_per_step(tcfg.batch_size), rank=self.world.rank,
                              world_size=self.world.world_size, model=self.model)
        self.checkpoint_path = run.run_dir / CHECKPOINT_DIR / LAST_NAME
        self.previews = Previewer(run.run_dir, cfg, self.model, self.sampler, self.trainer, device)
        self.last_metrics: dict[str, float] = {}
        self.evaluator = None
        self.last_eval = time.monotonic()
        self.last_checkpoint_step: int | None = None
        self.checkpoint_due = False  # a routine checkpoint put off while the trainer was unsettled
        self.unsettled = False  # the trainer suspects a divergence (decided by all processes together)
        self.stop_signal: int | None = None
        self.finished_early = False  # trainer.out_of_rollbacks = finish ended the run on its last good checkpoint
        if run.checkpoint_state is not None:
            self.restore(run.checkpoint_state)
            if self.rollbacks_counted() >= self.tcfg.max_rollbacks:
                # the guard stopped this run and the user stepped in: its allowance starts afresh. Only
                # then: the count itself goes on (it seeds the next rollback's draws), so a run resumed
                # after a crash or a Ctrl-C repeats exactly what it would have done
                self.loop["rollbacks_forgiven"] = self.loop["rollbacks"]
            self.ctx.extra.update(run.checkpoint_state.get("extra", {}))
            self.ctx.resumed = True
        elif self.world.active:
            self.trainer.distribute(self.world.rank, self.world.world_size)
        if self.world.active:
            distributed.broadcast_parameters(self.model)
            self.grad_hooks = distributed.average_gradients_on_backward(self.model, self.world)
        # steps still to go: the rest of this epoch and the epochs after it (counted with the present
        # number of processes, so a run resumed on more or fewer processes still ends after trainer.epochs)
        to_go = (tcfg.epochs - self.loop["epoch"]) * self.steps_per_epoch - self.loop["batch"]
        self.total = self.loop["step"] + max(to_go, 0)
        if tcfg.max_steps is not None:
            self.total = min(self.total, tcfg.max_steps)
        self.ctx.total_steps = self.total
        if self.ctx.resumed and self.loop["step"] >= self.total:
            raise RunError(f"run {run.run_dir} already finished at step {self.loop['step']}; to train further "
                           f"resume with --set trainer.epochs=N (now {tcfg.epochs}) or trainer.max_steps=N "
                           f"(now {tcfg.max_steps})")
        if self.world.is_main:
            save_resolved_config(run.run_dir, config_to_dict(cfg), resumed_at=self.loop["step"] if self.ctx.resumed else None)

    # --- checkpoints --------------------------------------------------------------------------
    def state(self, trainer_states: list[dict[str, Any]]) -> dict[str, Any]:
        from genframe import __version__

        config = config_to_dict(self.cfg)
        plugin = self.run_spec.plugin
        return {
            "genframe_version": __version__,
            "recipe": self.run_spec.recipe_name,
            "plugin": plugin,
            "plugin_version": next((p.version for p in self.host.plugins if p.name == plugin), "unknown"),
            "config": config,
            "config_hash": config_hash(config),
            "model": self.model.state_dict(),
            **self.sampling_weights(),
            "trainer": trainer_states[0],
            "trainer_ranks": trainer_states,  # each process's buffer and RNG streams (torchrun)
            "loop": dict(self.loop),
            "pending": {"sums": dict(self.sums), "count": self.count},
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "extra": dict(self.ctx.extra),
        }

    def sampling_weights(self) -> dict[str, Any]:
        """The weights ``genframe sample`` should load, when the trainer samples with other ones (e.g. EMA)."""
        sampling = self.trainer.sampling_model()
        return {} if sampling is None else {"sampling_model": sampling.state_dict()}

    def restore(self, state: dict[str, Any]) -> None:
        ranks = state.get("trainer_ranks") or [state["trainer"]]
        own = ranks[self.world.rank % len(ranks)]  # more processes than saved: copies, reseeded below
        try:
            self.model.load_state_dict(state["model"])
            self.trainer.load_state_dict(own)
        except (RuntimeError, KeyError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:300]
            raise CheckpointError(f"the checkpoint does not fit this config's model or trainer ({reason}); "
                                  "resume without changing model settings, or start a new run") from None
        if self.world.rank >= len(ranks):
            self.trainer.distribute(self.world.rank, self.world.world_size)
        self.loop = {"rollbacks": 0, "train_seconds": 0.0, "world_size": 1, **state["loop"]}
        saved_world = self.loop["world_size"]
        if saved_world != self.world.world_size:  # keep the position as examples seen, not batches
            seen = self.loop["batch"] * saved_world
            self.loop["batch"] = seen // self.world.world_size
            if self.loop["batch"] >= self.steps_per_epoch:
                self.loop["epoch"], self.loop["batch"] = self.loop["epoch"] + 1, 0
            self.loop["world_size"] = self.world.world_size
        pending = state.get("pending", {"sums": {}, "count": 0})
        self.sums = {k: (v.to(self.ctx.device) if torch.is_tensor(v) else v) for k, v in pending["sums"].items()}
        self.count = pending["count"]
        torch.set_rng_state(state["rng"]["torch"])  # global streams, for plugins that draw from them
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.ctx.step, self.ctx.epoch, self.ctx.batch = self.loop["step"], self.loop["epoch"], self.loop["batch"]

    def checkpoint(self) -> None:
        if not self.weights_finite():  # never let a diverged model overwrite the last good checkpoint
            raise DivergenceError("non-finite model weights")
        own = self.trainer.state_dict()
        states = distributed.gather_to_main(own, self.world) if self.world.active else [own]
        if self.world.is_main:  # only rank 0 writes
            save_checkpoint(self.checkpoint_path, self.state(states))
            self.hook.genframe_checkpoint(run=self.ctx, path=self.checkpoint_path, step=self.ctx.step)
        self.last_checkpoint_step = self.ctx.step

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    # --- divergence ---------------------------------------------------------------------------
    def rollbacks_counted(self) -> int:
        """Rollbacks that count against trainer.max_rollbacks: those since the guard last stopped the run."""
        return self.loop["rollbacks"] - self.loop.get("rollbacks_forgiven", 0)

    def rollback(self, error: DivergenceError) -> None:
        where = f"{error} at step {self.ctx.step + 1} (epoch {self.loop['epoch'] + 1})"
        rollbacks, counted = self.loop["rollbacks"] + 1, self.rollbacks_counted() + 1
        out_of_rollbacks = counted > self.tcfg.max_rollbacks
        if out_of_rollbacks and self.tcfg.out_of_rollbacks == "finish":  # (config: never with on_divergence=stop)
            self.finish_early(where, counted - 1)
            return
        if self.tcfg.on_divergence == "stop" or out_of_rollbacks:
            tried = f" after {counted - 1} rollback(s)" if counted > 1 else ""
            raise DivergenceError(f"training diverged: {where}{tried}; the last good checkpoint is "
                                  f"{self.checkpoint_path}; lower trainer.lr (or regularise more), then --resume")
        self.return_to_last_checkpoint()
        self.loop["rollbacks"] = rollbacks
        # Fresh random draws for the redone steps: replaying the exact draws that diverged tends to
        # diverge again (measured on the fast EBM recipe: the replay collapsed at the very same step,
        # with the same cdiv, and after each of five rollbacks at ever lower rates it collapsed again).
        # A new chance, not a cure: a state prone to collapse can still collapse with fresh draws.
        fresh = rollback_seed(self.cfg.seed, self.world.rank, self.ctx.step, rollbacks)
        torch.manual_seed(fresh)
        self.trainer.reseed(fresh)
        rates = self.trainer.scale_learning_rate(self.tcfg.rollback_lr_factor)
        reason = f"{where}; rolled back to step {self.ctx.step} with learning rate {rates[0]:.3g}"
        warnings.warn(f"genframe: training diverged: {reason} (rollback {counted}/{self.tcfg.max_rollbacks})",
                      DivergenceWarning, stacklevel=2)
        self.hook.genframe_rollback(run=self.ctx, step=self.ctx.step, reason=reason)
        self.checkpoint()  # the lower learning rate and the rollback count survive a crash

    def return_to_last_checkpoint(self) -> None:
        """Reload the last good checkpoint. best.pt on disk is not rolled back, so neither is the record
        of it; and the training time spent on the steps now thrown away was spent: train_minutes keeps
        counting it."""
        kept = {k: self.loop[k] for k in ("best_fd", "best_step", "train_seconds", "rollbacks_forgiven")
                if k in self.loop}
        self.restore(load_checkpoint(self.checkpoint_path))
        self.loop.update(kept)
        self.checkpoint_due = self.unsettled = False

    def finish_early(self, where: str, rollbacks: int) -> None:
        """trainer.out_of_rollbacks = "finish": end the run on the last good checkpoint (early stopping),
        with a final evaluation of those weights; a `--resume` later trains on from there."""
        self.return_to_last_checkpoint()
        self.finished_early = True
        reason = (f"{where}; rolled back to step {self.ctx.step} and finished there, out of rollbacks ({rollbacks} "
                  "of trainer.max_rollbacks; trainer.out_of_rollbacks = finish): its weights are the run's result")
        warnings.warn(f"genframe: training diverged: {reason}", DivergenceWarning, stacklevel=3)
        self.hook.genframe_rollback(run=self.ctx, step=self.ctx.step, reason=reason)
        self.maybe_evaluate(end_of_epoch=False, final=True)
        self.checkpoint()  # the time spent, thrown-away steps included, and the final evaluation's record

    # --- the loop -----------------------------------------------------------------------------
    def log_metrics(self) -> None:
        averaged = {k: float(v) / self.count for k, v in self.sums.items()}
        if self.world.active:
            averaged = distributed.mean_across(averaged, self.ctx.device)
        bad = [k for k, v in averaged.items() if not math.isfinite(v)]
        if bad:
            raise DivergenceError(f"non-finite {', '.join(bad)}")
        self.last_metrics = averaged
        self.hook.genframe_log(run=self.ctx, step=self.ctx.step, metrics=averaged, images={})
        self.sums, self.count = {}, 0

    def train_epoch(self, signals: StopSignals) -> None:
        loop, lcfg = self.loop, self.cfg.logging
        self.ctx.epoch = loop["epoch"]
        order = epoch_permutation(len(self.train_data), self.cfg.seed, loop["epoch"], self.ctx.device)
        order = order[self.world.rank :: self.world.world_size]  # this process's shard
        while loop["batch"] < self.steps_per_epoch and loop["step"] < self.total:
            start = loop["batch"] * self.tcfg.batch_size
            began = time.perf_counter()
            try:
                metrics = self.step(order[start : start + self.tcfg.batch_size], signals)
            finally:  # training alone (no eval, pictures, checkpoints), a step that diverged included
                loop["train_seconds"] += time.perf_counter() - began
            self.ctx.batch = loop["batch"] = loop["batch"] + 1
            self.ctx.step = loop["step"] = loop["step"] + 1
            for key, value in metrics.items():  # accumulate on the device: no per-step host sync
                self.sums[key] = self.sums.get(key, 0.0) + (value.detach() if torch.is_tensor(value) else value)
            self.count += 1
            if self.ctx.step % lcfg.log_every == 0 or self.ctx.step == self.total:
                self.log_metrics()
            if lcfg.sample_every and self.ctx.step % lcfg.sample_every == 0 and self.world.is_main:
                self.hook.genframe_log(run=self.ctx, step=self.ctx.step, metrics={},
                                       images=self.previews.grids(self.ctx.step))
            end_of_epoch = loop["batch"] == self.steps_per_epoch
            if end_of_epoch:
                loop["epoch"], loop["batch"] = loop["epoch"] + 1, 0
                self.end_epoch()
            elif (self.tcfg.checkpoint_every and self.ctx.step % self.tcfg.checkpoint_every == 0) or self.checkpoint_due:
                self.routine_checkpoint()
            self.maybe_evaluate(end_of_epoch)
            if self.stop_signal is not None:
                self.interrupt(self.stop_signal)
            if end_of_epoch:
                return  # the next epoch draws a new order

    def step(self, index: torch.Tensor, signals: StopSignals) -> dict[str, Any]:
        """One train step; under torchrun, divergence and stop signals are decided by all processes
        together, so no process waits forever in a collective the others have left."""
        diverged, metrics = None, {}
        try:
            metrics = self.trainer.train_step(self.train_data.get_batch(index))
        except DivergenceError as error:
            diverged = error
        self.stop_signal = signals.received  # read once: what every process acts on after this step
        self.unsettled = not self.trainer.is_settled()
        if self.world.active:
            any_diverged, any_stop, self.unsettled = distributed.any_rank(
                [diverged is not None, self.stop_signal is not None, self.unsettled], self.ctx.device)
            if any_diverged and diverged is None:
                diverged = DivergenceError("diverged on another process")
            if any_stop and self.stop_signal is None:
                self.stop_signal = signal.SIGTERM  # another process was told to stop
            elif not any_stop:
                self.stop_signal = None  # arrived here after the others decided: acted on next step
        if diverged is not None:
            raise diverged
        return metrics

    def end_epoch(self) -> None:
        val = {f"val/{k}": float(v) for k, v in self.trainer.validate(self.val_data).items()}
        bad = [k for k, v in val.items() if not math.isfinite(v)]
        if bad:
            raise DivergenceError(f"non-finite {', '.join(bad)}")
        val["epoch"] = self.loop["epoch"]
        wants_grid = self.world.is_main and not self.cfg.logging.sample_every
        images = self.previews.grids(self.ctx.step) if wants_grid else {}
        self.hook.genframe_log(run=self.ctx, step=self.ctx.step, metrics=val, images=images)
        self.last_metrics.update(val)
        self.routine_checkpoint()

    def routine_checkpoint(self) -> None:
        """The end-of-epoch or ``checkpoint_every`` checkpoint, put off to the first step at which the
        trainer is settled: the checkpoint is what a rollback returns to, so it must be a good state."""
        self.checkpoint_due = self.unsettled
        if not self.unsettled:
            self.checkpoint()

    def maybe_evaluate(self, end_of_epoch: bool, final: bool = False) -> None:
        """Sample quality during training, every ``eval.every_epochs``, ``_minutes`` and/or ``_steps``;
        ``final``: once more at the end, if the run evaluates at all."""
        ecfg = self.cfg.eval
        if not self.world.is_main:
            return
        by_epoch = end_of_epoch and ecfg.every_epochs and self.loop["epoch"] % ecfg.every_epochs == 0
        by_time = ecfg.every_minutes and time.monotonic() - self.last_eval >= ecfg.every_minutes * 60
        by_step = ecfg.every_steps and self.ctx.step % ecfg.every_steps == 0
        by_end = final and (ecfg.every_epochs or ecfg.every_minutes or ecfg.every_steps)
        if not (by_epoch or by_time or by_step or by_end):
            return
        from genframe.evaluate import EVAL_CHUNK, shared_evaluator  # built only when first used
        from genframe.generation import generate_in_chunks

        if self.evaluator is None:
            self.evaluator = shared_evaluator(self.host.registry, self.cfg.data)
        models = {"eval": self.previews.sampling_model()}
        if models["eval"] is not self.model:  # e.g. averaged weights: the trained ones too, for comparison
            models["eval/trained"] = self.model
        metrics = {}
        for prefix, model in models.items():
            images = generate_in_chunks(self.sampler, model, ecfg.n, ecfg.steps, self.cfg.seed,
                                        stream=5_000 + self.ctx.step, device=self.ctx.device, chunk=EVAL_CHUNK).images
            metrics.update({f"{prefix}/{k}": v for k, v in self.evaluator(images).items()})
        metrics["eval/train_minutes"] = self.loop["train_seconds"] / 60
        metrics["eval/n"] = ecfg.n  # an fd depends on its sample count: records say which they used
        self.keep_if_best(metrics["eval/fd"])
        self.hook.genframe_log(run=self.ctx, step=self.ctx.step, metrics=metrics, images={})
        self.last_metrics.update(metrics)
        self.last_eval = time.monotonic()  # time spent evaluating does not count as training time

    def keep_if_best(self, fd: float) -> None:
        """Write ``checkpoints/best.pt`` when an evaluation beats every earlier one, so that a run whose
        quality later falls (an EBM can collapse) still holds its best weights. Main process only."""
        if not fd < self.loop.get("best_fd", float("inf")) or not self.weights_finite():
            return
        self.loop["best_fd"], self.loop["best_step"] = fd, self.ctx.step
        save_checkpoint(self.checkpoint_path.with_name(BEST_NAME), self.state([self.trainer.state_dict()]))

    def interrupt(self, signum: int) -> None:
        self.checkpoint()
        name = signal.Signals(signum).name
        raise RunInterrupted(f"{name} at step {self.ctx.step}: checkpoint written to {self.checkpoint_path}; "
                             f"continue with: genframe run {self.run_spec.recipe_name} --resume {self.ctx.run_dir}",
                             exit_code=128 + signum)

    @contextmanager
    def loggers(self):
        names = [n for n in self.cfg.logging.loggers if not (self.run_spec.quiet and n == "console")]
        if not self.world.is_main:
            names = []  # metrics, pictures, W&B: rank 0 only
        with attached_loggers(self.host, names, self.ctx):
            yield

    def run(self) -> RunResult:
        status = "failed"
        with self.loggers(), StopSignals() as signals:
            self.hook.genframe_run_start(run=self.ctx)
            try:
                if not self.ctx.resumed:
                    self.checkpoint()  # step 0: something to resume from and to roll back to
                while (self.loop["epoch"] < self.tcfg.epochs and self.loop["step"] < self.total
                       and not self.finished_early):
                    try:
                        self.train_epoch(signals)
                    except DivergenceError as error:
                        self.rollback(error)
                if self.last_checkpoint_step != self.ctx.step:
                    self.checkpoint()
                if self.world.is_main:
                    final = self.previews.grids(self.ctx.step) if self.previews.last_grid_step != self.ctx.step else {}
                    self.hook.genframe_log(run=self.ctx, step=self.ctx.step, metrics={},
                                           images={**final, **self.previews.chain(self.ctx.step)})
                status = "completed"
            except (RunInterrupted, KeyboardInterrupt):
                status = "interrupted"
                raise
            finally:
                self.hook.genframe_run_end(run=self.ctx, status=status)
        return RunResult(self.ctx.run_dir, self.checkpoint_path, self.ctx.step, status, self.last_metrics,
                         rank=self.world.rank)
