"""The training loop, for any recipe: train steps in a deterministic order, logging, checkpoints,
pictures and signals. Callbacks and loggers hear the run at the points marked ``self.call`` (where
callbacks may act, through ``genframe.contracts.listeners.Control``) and ``self.hear`` (where everyone
only watches); every policy (divergence guard, evaluations, keep-best, EMA ...) is a callback.
"""

from __future__ import annotations

import math
import signal
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

import torch

from genframe.contracts.context import RunResult
from genframe.contracts.errors import CallbackError, DivergenceError, RunError, RunInterrupted
from genframe.contracts.listeners import Control
from genframe.loggers.attach import is_console, open_loggers
from genframe.training import distributed
from genframe.training.budget import Budget
from genframe.training.checkpoint import save_checkpoint
from genframe.training.previews import Previewer
from genframe.training.rewind import DivergenceWarning, Redirect, Rewinding  # noqa: F401 - DivergenceWarning is public here
from genframe.training.rundir import StatusRecorder
from genframe.training.runsetup import epoch_permutation
from genframe.training.runstate import Parts
from genframe.training.updates import UpdateBoundary
from genframe.util.shares import steps_of
from genframe.util.signals import StopSignals
from genframe.util.text import one_line

if TYPE_CHECKING:  # the run assembles the loop; the loop only reads it
    from genframe.training.run import TrainingRun


class TrainingLoop(Rewinding):
    """One run's training, from its first (or resumed) step to its last."""

    def __init__(self, run: TrainingRun, parts: Parts) -> None:
        self.run_spec, self.host, self.world, self.cfg = run, run.host, run.world, run.config
        self.tcfg, self.p, self.ctx, self.state = run.config.trainer, parts, parts.ctx, parts.state
        self.model, self.trainer, self.listeners = parts.model, parts.trainer, parts.callbacks
        self.loop = self.state.loop  # epoch, batch, step, rollbacks, train_seconds: saved in checkpoints
        self.previews = Previewer(run.run_dir, self.cfg, run.recipe, parts.sampler, parts.trainer, self.ctx.device,
                                  self.ctx.sampling_model)
        self.trainer.update_check = self.checked_update  # Trainer.check_update of genframe 0.1
        if self.world.active:
            self.grad_hooks = distributed.average_gradients_on_backward(self.model, self.world)
        self.last_metrics: dict[str, float] = {}
        self.last_checkpoint_step: int | None = self.ctx.step if self.ctx.resumed else None  # resumed: it is on disk
        self.checkpoint_due = False  # a routine checkpoint a callback put off: tried again each step
        self.stop_signal: int | None = None
        self.stop_reason: str | None = None  # a callback asked to end the run here
        self.mid_update = False  # between a step's backward and its update: a failure leaves the step half done
        self.updates = UpdateBoundary(self.trainer)  # who steps the optimizer, and when
        self.in_end_of_run = False  # training is over and saved; the final evaluation and pictures are under way
        self.status = StatusRecorder(self.ctx.run_dir, self.world.is_main)
        self.budget = Budget(self.tcfg, self.loop, self.world)

    # --- the run --------------------------------------------------------------------------------
    def run(self) -> RunResult:
        status, ctx, failure = "failed", self.ctx, None
        loggers = [n for n in self.cfg.logging.loggers if not (self.run_spec.quiet and is_console(n))]
        self.listeners.loggers = open_loggers(self.host, loggers if self.world.is_main else [], ctx)
        ctx.loggers = tuple(loggers) if self.world.is_main else ()
        with StopSignals() as signals:
            self.record_status("running")
            try:
                self.act(self.call("on_run_start"), between_steps=False)
                if not ctx.resumed:
                    self.checkpoint()  # step 0: something to resume from and to roll back to
                while (self.loop["epoch"] < self.tcfg.epochs and self.loop["step"] < ctx.total_steps
                       and not ctx.finished_early and self.stop_reason is None):
                    try:
                        self.train_epoch(signals)
                    except DivergenceError as error:
                        self.diverged(error)
                    except Redirect as redirect:
                        self.redirect(f"{redirect.control.rollback_reason or redirect.control.finish_reason} "
                                      f"at step {ctx.step} (epoch {ctx.epoch + 1})", redirect.control)
                self.end_of_run(signals)
                status = "finished early" if (ctx.finished_early or self.stop_reason) else "completed"
            except CallbackError as error:
                failure = str(error)
                if not self.mid_update and self.weights_finite():  # the run so far (not a step half done) is kept
                    self.checkpoint()
                raise
            except (RunInterrupted, KeyboardInterrupt):
                status = "interrupted"
                raise
            except OSError as error:  # a full disk or a lost folder while writing a picture or a log
                failure = f"could not write {error.filename or 'a file'}: {error.strerror or error}"
                raise RunError(f"{failure}; free disk space or fix permissions, then resume from the last checkpoint: "
                               f"genframe run {self.run_spec.recipe_name} --resume {ctx.run_dir}") from None
            except BaseException as error:
                failure = one_line(error)[:300] or type(error).__name__
                raise
            finally:
                try:
                    self.hear("on_run_end", "completed" if status == "finished early" else status)
                finally:  # a strict run's failing logger must not leave status.json saying "running"
                    self.record_status(status, message=failure or self.stop_reason)
        return RunResult(ctx.run_dir, self.p.checkpoint_path, ctx.step, "completed", self.last_metrics, rank=ctx.rank,
                         stopped=self.stop_reason)

    def end_of_run(self, signals: StopSignals) -> None:
        """The training is saved first; then the final evaluation (``on_train_end``) and pictures, which a
        signal interrupts at once and a ``--resume`` makes again (only what is missing)."""
        ctx, done = self.ctx, self.run_spec.end_of_run_done
        if ctx.finished_early or self.last_checkpoint_step != ctx.step:
            self.checkpoint()
        self.in_end_of_run = True
        self.record_status("running")  # phase "end of run": a stop from here on is redone by --resume
        try:
            signals.at_once()
            if "train_end" not in done:
                extra = dict(ctx.extra)
                control = self.call("on_train_end")
                self.act(control, between_steps=False)
                if control.reports or ctx.extra != extra:  # (keep-best records what the run samples with there)
                    self.checkpoint()  # what the callbacks recorded of the final evaluation survives what follows
                done.append("train_end")
                self.record_status("running")
            if self.world.is_main:
                final = self.previews.grids(ctx.step) if self.previews.last_grid_step != ctx.step else {}
                self.hear("on_log", {}, {**final, **self.previews.chain(ctx.step)})
            done.append("pictures")
        except RunInterrupted as stop:
            raise RunInterrupted(f"{stop} at step {ctx.step}: the training is saved in {self.p.checkpoint_path}; "
                                 f"genframe run {self.run_spec.recipe_name} --resume {ctx.run_dir} makes the final "
                                 "evaluation and pictures", exit_code=stop.exit_code) from None
        finally:
            signals.immediate = False  # the run's own closing (loggers, status) finishes whatever comes
            self.in_end_of_run = len(done) < 2

    def record_status(self, status: str, message: str | None = None) -> None:
        """``RUN/status.json``: what the run is doing or how it ended, and which end-of-run work is done."""
        self.status.record(status, step=self.ctx.step, total_steps=self.ctx.total_steps, message=message,
                           train_minutes=round(self.loop["train_seconds"] / 60, 3),
                           end_of_run_done=list(self.run_spec.end_of_run_done),
                           phase="end of run" if self.in_end_of_run else None)  # --resume redoes only that

    def train_epoch(self, signals: StopSignals) -> None:
        loop, ctx, lcfg, batch_size = self.loop, self.ctx, self.cfg.logging, self.tcfg.batch_size
        ctx.epoch = loop["epoch"]
        order = epoch_permutation(len(self.p.train_data), self.cfg.seed, loop["epoch"], ctx.device)
        order = order[self.world.rank :: self.world.world_size]  # this process's shard
        while loop["batch"] < self.p.steps_per_epoch and loop["step"] < ctx.total_steps:
            start = loop["batch"] * batch_size
            began = time.perf_counter()
            try:
                metrics = self.step(order[start : start + batch_size], signals)
            finally:  # training alone (no evaluation, pictures, checkpoints), a step that diverged included
                loop["train_seconds"] += time.perf_counter() - began
            ctx.batch = loop["batch"] = loop["batch"] + 1
            ctx.step = loop["step"] = loop["step"] + 1
            if self.run_spec.heartbeat is not None:
                self.run_spec.heartbeat.first_step_done()  # torchrun: a silent peer is stalled after peer_timeout now
            self.fix_length_when_timed()
            self.stop_when_out_of_time()
            for key, value in metrics.items():  # accumulate on the device: no per-step host sync
                self.state.sums[key] = self.state.sums.get(key, 0.0) + (value.detach() if torch.is_tensor(value) else value)
            self.state.count += 1
            averaged = distributed.mean_of_tensors(metrics, ctx.device) if self.world.active else metrics
            self.act(self.call("on_after_update", averaged))
            if ctx.step % lcfg.log_every == 0 or ctx.step == ctx.total_steps:
                self.log_metrics()
            sample_every = steps_of(lcfg.sample_every, ctx.planned_steps)
            if sample_every and ctx.step % sample_every == 0 and self.world.is_main:
                self.hear("on_log", {}, self.previews.grids(ctx.step))
            ctx.end_of_epoch = loop["batch"] == self.p.steps_per_epoch
            if ctx.end_of_epoch:
                loop["epoch"], loop["batch"] = loop["epoch"] + 1, 0
                self.end_epoch()
            elif (self.tcfg.checkpoint_every and ctx.step % self.tcfg.checkpoint_every == 0) or self.checkpoint_due:
                self.routine_checkpoint()
            self.act(self.call("on_step_end"))
            if self.stop_signal is not None:
                self.interrupt(self.stop_signal)
            if ctx.end_of_epoch or self.stop_reason is not None:
                return  # the next epoch draws a new order

    def step(self, index: torch.Tensor, signals: StopSignals) -> dict[str, Any]:
        """One train step: the trainer's forward and backward, then the update, which is the core's: callbacks
        see the step's signals first and may veto it. Under torchrun divergence, vetoes and stop signals are
        decided by all processes together, so no process waits forever in a collective the others have left."""
        diverged, metrics = None, {}
        with self.updates.watch() as stepped:
            try:
                metrics = self.trainer.train_step(self.p.train_data.get_batch(index))
            except DivergenceError as error:
                diverged = error
        self.stop_signal = signals.received  # read once: what every process acts on after this step
        if self.world.active:
            any_diverged, any_stop = distributed.any_rank([diverged is not None, self.stop_signal is not None],
                                                          self.ctx.device)
            if any_diverged and diverged is None:
                diverged = DivergenceError("diverged on another process")
            if any_stop and self.stop_signal is None:
                self.stop_signal = signal.SIGTERM  # another process was told to stop
            elif not any_stop:
                self.stop_signal = None  # arrived here after the others decided: acted on next step
        diverged = self.updates.finish(metrics, diverged, stepped(), self.before_update)
        if diverged is not None:
            raise diverged
        return metrics

    def checked_update(self, signals: dict[str, Any]) -> None:
        """``Trainer.check_update`` (genframe 0.1): the callbacks look now, and not again after train_step."""
        self.updates.checked = True
        self.before_update(signals)

    def before_update(self, signals: dict[str, Any]) -> None:
        """Callbacks see the step's divergence signals (averaged over processes) before the optimizer steps;
        a veto raises DivergenceError. Also ``Trainer.check_update`` of a trainer that steps itself."""
        self.mid_update = True  # until the callbacks have been heard: a failure here leaves a half-done step
        if self.world.active:
            signals = distributed.mean_of_tensors(signals, self.ctx.device)
        values = {name: float(value) for name, value in signals.items()}
        control = self.call("on_before_update", values)
        self.mid_update = False
        self.stop_after_step(control)
        if control.veto_reason is not None:
            raise DivergenceError(control.veto_reason)

    def end_epoch(self) -> None:
        val = {f"val/{k}": float(v) for k, v in self.trainer.validate(self.p.val_data).items()}
        bad = [k for k, v in val.items() if not math.isfinite(v)]
        if bad:
            raise DivergenceError(f"non-finite {', '.join(bad)}")
        val["epoch"] = self.loop["epoch"]
        wants_grid = self.world.is_main and not self.cfg.logging.sample_every
        images = self.previews.grids(self.ctx.step) if wants_grid else {}
        self.hear("on_log", val, images)
        self.last_metrics.update(val)
        self.routine_checkpoint()

    def log_metrics(self) -> None:
        averaged = {k: float(v) / self.state.count for k, v in self.state.sums.items()}
        if self.world.active:
            averaged = distributed.mean_across(averaged, self.ctx.device)
        bad = [k for k, v in averaged.items() if not math.isfinite(v)]
        if bad:
            raise DivergenceError(f"non-finite {', '.join(bad)}")
        self.last_metrics = averaged
        self.hear("on_log", averaged, {})
        self.state.sums, self.state.count = {}, 0

    # --- callbacks' requests ----------------------------------------------------------------------
    def call(self, point: str, *args: Any) -> Control:
        """A point where callbacks may act: their requests, agreed across processes (``Listeners.decide``)."""
        return self.listeners.decide(point, self.ctx, self.world, *args)

    def act(self, control: Control, between_steps: bool = True) -> None:
        """Carry out what callbacks asked for; a rollback or finish only between training steps."""
        for metrics in control.reports:  # an evaluation: to the loggers, then to every callback
            self.hear("on_log", metrics, {})
            self.last_metrics.update(metrics)
            self.act(self.call("on_evaluation", metrics), between_steps)
        for name in control.copies:
            if self.world.is_main and self.weights_finite():
                save_checkpoint(self.p.checkpoint_path.with_name(name), self.state.checkpoint([self.trainer.state_dict()]))
        if control.copies and self.last_checkpoint_step == self.ctx.step:
            self.checkpoint()  # this step's checkpoint came first: it must hold the callbacks' new state (a resume
            # would otherwise forget keep-best's record and overwrite best.pt with worse weights)
        if control.rollback_reason is not None or control.finish_reason is not None:
            if not between_steps:
                asked = control.rollback_reason or control.finish_reason
                raise CallbackError(f"a callback asked to roll back or finish ({asked}) outside training steps, where "
                                    "there is nothing to redo; ask in on_after_update, on_step_end or on_divergence")
            raise Redirect(control)
        self.stop_after_step(control)

    def fix_length_when_timed(self) -> None:
        """``trainer.budget_minutes``: once the first steps are timed, the run's length is fixed, and the trainer and
        every setting written as a share of the run follow it."""
        fixed = self.budget.after_step()
        if fixed is None:
            return
        self.ctx.total_steps, self.ctx.length_known = min(self.ctx.total_steps, fixed), True
        self.trainer.set_run_length(self.ctx.total_steps)
        self.checkpoint_due = True  # the length is on disk at once: a crash before the next checkpoint keeps it
        if self.world.is_main:
            print(f"genframe: {self.budget.line(self.ctx.total_steps)}", file=sys.stderr, flush=True)

    def stop_when_out_of_time(self) -> None:
        """``trainer.max_minutes``: end after the step that used them up (all processes at the same step)."""
        limit = self.tcfg.max_minutes
        if limit is None or self.stop_reason is not None:
            return
        out_of_time = self.loop["train_seconds"] >= 60 * limit
        if self.world.active:
            (out_of_time,) = distributed.any_rank([out_of_time], self.ctx.device)
        if out_of_time and self.ctx.step < self.ctx.total_steps:
            # another process's clock may have decided: the checkpoint records the limit as used up
            self.loop["train_seconds"] = max(self.loop["train_seconds"], 60 * limit)
            self.stop_reason = (f"trainer.max_minutes={limit:g} of training reached at step {self.ctx.step}; "
                                f"to train on, resume with a larger trainer.max_minutes")

    def stop_after_step(self, control: Control) -> None:
        if control.stop_reason is not None and self.stop_reason is None:
            self.stop_reason = control.stop_reason
            if self.world.is_main:  # every process stops (the request was agreed); the main one says so, once
                warnings.warn(f"genframe: stopping at step {self.ctx.step}: {control.stop_reason}", UserWarning,
                              stacklevel=3)

    # --- checkpoints and divergence -----------------------------------------------------------------
    def routine_checkpoint(self) -> None:
        """The end-of-epoch or ``checkpoint_every`` checkpoint, unless a callback puts it off (the
        checkpoint is what a rollback returns to, so it must be a good state)."""
        self.checkpoint_due = self.call("on_before_checkpoint").skip
        if not self.checkpoint_due:
            self.checkpoint()

    def checkpoint(self) -> None:
        if not self.weights_finite():  # never let a diverged model overwrite the last good checkpoint
            raise DivergenceError("non-finite model weights")
        own = {"trainer": self.trainer.state_dict(), "pending": self.state.pending()}
        states = distributed.gather_to_main(own, self.world) if self.world.active else [own]
        if self.world.is_main:  # only rank 0 writes
            save_checkpoint(self.p.checkpoint_path, self.state.checkpoint([s["trainer"] for s in states],
                                                                          [s["pending"] for s in states]))
            self.hear("on_checkpoint", self.p.checkpoint_path)
        self.last_checkpoint_step = self.ctx.step
        if not self.in_end_of_run:  # a run killed outright (kill -9) still shows the step it can resume from
            self.record_status("running")

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def interrupt(self, signum: int) -> None:
        self.checkpoint()
        name = signal.Signals(signum).name
        raise RunInterrupted(f"{name} at step {self.ctx.step}: checkpoint written to {self.p.checkpoint_path}; "
                             f"continue with: genframe run {self.run_spec.recipe_name} --resume {self.ctx.run_dir}",
                             exit_code=128 + signum)

    def hear(self, point: str, *args: Any) -> None:
        """A point where everyone only watches (``WATCH_ONLY``): a listener that raises is dropped, the run goes on."""
        self.listeners.call(point, self.ctx, *args)
