"""Console progress on stderr: a live ``tqdm`` bar on a terminal (``tqdm.auto``: a widget in a
notebook); elsewhere (CI, files) a plain line at most every ``PLAIN_INTERVAL`` seconds plus each
epoch's validation, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from genframe.contracts.listeners import Logger

# The first metrics a trainer returns, in its order, fit on the line; the core names none of them.
MAX_SHOWN = 5
PLAIN_INTERVAL = 30.0
BAR_WIDTH = 20


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"


def in_notebook() -> bool:
    """A Jupyter kernel (its stderr is no terminal, but it shows a progress widget)."""
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    return get_ipython is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell"


class ConsoleLogger(Logger):
    """Step rate, work rate (e.g. img-steps/s), ETA and the latest key metrics: a tqdm bar over the run
    where someone watches, a plain line every 30 s where output goes to a file."""

    def __init__(self, run, stream=None) -> None:
        super().__init__(run)
        self.stream = stream or sys.stderr
        self.live = (hasattr(self.stream, "isatty") and self.stream.isatty()) or (stream is None and in_notebook())
        self.last_plain = float("-inf")
        self.bar: Any = None

    def _write(self, text: str) -> None:
        if self.bar is not None:  # above the bar, which redraws below it
            self.bar.write(text, file=self.stream)
            return
        self.stream.write(text + "\n")
        self.stream.flush()

    def _open_bar(self, run, step: int) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=run.total_steps, initial=step, file=self.stream, unit="step", dynamic_ncols=True,
                        desc=f"epoch {run.epoch + 1}/{run.config.trainer.epochs}", leave=True)

    def _update_bar(self, run, step: int, metrics: dict[str, float]) -> None:
        self.bar.set_description(f"epoch {run.epoch + 1}/{run.config.trainer.epochs}", refresh=False)
        if self.bar.total != run.total_steps:  # a budget in minutes fixed the run's length
            self.bar.total = run.total_steps
        work = {}
        if run.work_unit is not None and self.bar.format_dict.get("rate"):
            work = {run.work_unit[0] + "/s": _rate(self.bar.format_dict["rate"] * run.work_unit[1])}
        shown = {k: f"{v:.4g}" for k, v in list(metrics.items())[:MAX_SHOWN]}
        self.bar.set_postfix(work | shown, refresh=False)
        self.bar.update(step - self.bar.n)  # the steps since the last log

    def on_run_start(self, run, control) -> None:
        self.start_time = self.window_time = time.perf_counter()
        self.start_step = self.window_step = run.step
        verb = f"resuming at step {run.step}" if run.resumed else "starting"
        tcfg = run.config.trainer
        length = (f"{run.total_steps} steps" if run.length_known else f"trainer.budget_minutes={tcfg.budget_minutes:g}: "
                  f"its steps counted after the first {tcfg.budget_probe_steps}")
        self._write(f"genframe: {run.recipe_name} {verb} in {run.run_dir} on {run.device} "
                    f"({length}, {run.steps_per_epoch} per epoch)")
        if self.live:
            self._open_bar(run, run.step)

    def progress_line(self, run, step: int, metrics: dict[str, float]) -> str:
        in_epoch = run.batch  # steps done in this epoch
        filled = int(BAR_WIDTH * in_epoch / max(run.steps_per_epoch, 1))
        epochs = run.config.trainer.epochs
        rate = ""
        if step > self.window_step:  # no steps since the last line (a callback's report): no rate to tell yet
            now = time.perf_counter()
            steps_per_s = (step - self.window_step) / max(now - self.window_time, 1e-9)
            self.window_time, self.window_step = now, step
            eta = (run.total_steps - step) / steps_per_s
            work = ""
            if run.work_unit is not None:
                work = f" {_rate(steps_per_s * run.work_unit[1])} {run.work_unit[0]}/s"
            rate = f" {steps_per_s:.2f} it/s{work} eta {_duration(eta)}"
        shown = " ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:MAX_SHOWN])
        return (f"epoch {run.epoch + 1}/{epochs} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                f"{in_epoch}/{run.steps_per_epoch}{rate} {shown}")

    def on_log(self, run, control, metrics, images) -> None:
        step = run.step
        if any(key.startswith("val/") for key in metrics):
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("val/"))
            self._write(f"epoch {metrics.get('epoch', run.epoch + 1)} done at step {step}: {shown}")
            return
        if any(key.startswith("eval/") for key in metrics):  # an evaluation: its numbers, not training progress
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("eval/"))
            self._write(f"evaluation at step {step}: {shown}")
            self.window_time, self.window_step = time.perf_counter(), step  # the next rate: training alone
            return
        if not metrics:
            return
        if self.bar is not None:
            self._update_bar(run, step, metrics)
            return
        line = self.progress_line(run, step, metrics)
        now = time.perf_counter()
        if now - self.last_plain >= PLAIN_INTERVAL or step == run.total_steps:
            self.last_plain = now
            self._write(line)

    def on_rollback(self, run, control, reason) -> None:
        step = run.step
        # the step count went back: measure the rate afresh from here, not as negative steps per second
        self.window_time, self.window_step = time.perf_counter(), step
        if self.bar is not None:  # a new bar from the rollback's step: tqdm's rate starts afresh too
            self.bar.close()
            self._open_bar(run, step)

    def on_checkpoint(self, run, control, path) -> None:
        step = run.step
        if not self.live:
            self._write(f"checkpoint: {path} (step {step})")

    def on_run_end(self, run, control, status) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elapsed = time.perf_counter() - self.start_time
        self._write(f"genframe: run {status} at step {run.step} after {_duration(elapsed)}; {run.run_dir}")
