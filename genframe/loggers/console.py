"""Console progress: a live bar on a terminal, one plain line per log step elsewhere (CI logs stay readable)."""

from __future__ import annotations

import sys
import time

from genframe.hookspecs import hookimpl
from genframe.interfaces import Logger

SHOWN = ("loss", "cdiv", "real", "fake", "recon", "kl", "elbo")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class ConsoleLogger(Logger):
    """Step, epoch, rate (examples/s), ETA and the latest key metrics, on stderr."""

    def __init__(self, run, stream=None) -> None:
        super().__init__(run)
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()

    def _write(self, text: str, final: bool = False) -> None:
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    @hookimpl
    def genframe_run_start(self, run) -> None:
        self.start_time, self.start_step = time.perf_counter(), run.step
        verb = f"resuming at step {run.step}" if run.resumed else "starting"
        self._write(f"genframe: {run.recipe_name} {verb} in {run.run_dir} on {run.device} "
                    f"({run.total_steps} steps, {run.steps_per_epoch} per epoch)", final=True)

    @hookimpl
    def genframe_log(self, run, step, metrics, images) -> None:
        if any(key.startswith("val/") for key in metrics):
            shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("val/"))
            self._write(f"epoch {run.epoch + 1} done at step {step}: {shown}", final=True)
            return
        if not metrics:
            return
        elapsed = time.perf_counter() - self.start_time
        done = step - self.start_step
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (run.total_steps - step) / rate if rate > 0 else 0.0
        shown = " ".join(f"{k}={metrics[k]:.4g}" for k in SHOWN if k in metrics)
        width, filled = 20, int(20 * step / max(run.total_steps, 1))
        bar = "#" * filled + "." * (width - filled)
        examples = rate * run.config.trainer.batch_size
        self._write(f"[{bar}] step {step}/{run.total_steps} epoch {run.epoch + 1} "
                    f"{rate:.2f} it/s {examples:.0f} ex/s eta {_duration(eta)} {shown}")

    @hookimpl
    def genframe_checkpoint(self, run, path, step) -> None:
        if self.live:
            return
        self._write(f"checkpoint written: {path} (step {step})")

    @hookimpl
    def genframe_run_end(self, run, status) -> None:
        elapsed = time.perf_counter() - self.start_time
        self._write(f"genframe: run {status} at step {run.step} after {_duration(elapsed)}; {run.run_dir}", final=True)
