"""Weights & Biases logger: config, metrics, sample grids and the chain GIF, resumable, never fatal.

W&B trouble never stops training: a failed start (bounded by ``logging.wandb.init_timeout``) falls
back from online to offline, then to no logging, with one warning each; a failed log call warns
once and training goes on. Every record carries ``trainer/step`` (genframe's global step) as its
x-axis, so after a resume nothing is dropped for going "back" in W&B's own step counter. The W&B
run id lives in the checkpoint, so resuming a genframe run resumes the same W&B run. Only rank 0 logs.
"""

from __future__ import annotations

import secrets
import string
import warnings
from pathlib import Path

import torch

from genframe.config.sections import config_to_dict
from genframe.contracts.listeners import Logger
from genframe.util.images import grid_array

STEP_KEY = "trainer/step"
RUN_ID_KEY = "wandb_run_id"


class WandbWarning(UserWarning):
    """W&B failed; training continues."""


def _new_run_id() -> str:
    """Eight lowercase letters and digits, like W&B's own ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _warn(message: str) -> None:
    warnings.warn(f"genframe: {message}", WandbWarning, stacklevel=3)


class WandbLogger(Logger):
    def __init__(self, run) -> None:
        super().__init__(run)
        self.wb = None
        self.log_failed = False

    def on_run_start(self, run, control) -> None:
        settings = run.config.logging.wandb
        if not run.is_main or settings.mode == "disabled":
            return
        try:
            import wandb
        except ImportError as exc:  # pragma: no cover - wandb is a dependency
            _warn(f"W&B is not importable ({exc}); install wandb to log there. Training continues.")
            return
        run_id = run.extra.get(RUN_ID_KEY) or _new_run_id()
        kwargs = dict(
            project=settings.project, entity=settings.entity, name=settings.name or run.run_dir.name,
            tags=settings.tags, config=config_to_dict(run.config), dir=str(run.run_dir), id=run_id,
            resume="allow", settings=wandb.Settings(init_timeout=settings.init_timeout, console="off", silent=True),
        )
        modes = [settings.mode] + (["offline"] if settings.mode == "online" else [])
        for attempt, mode in enumerate(modes):
            if attempt:  # W&B's service keeps a failed run's id reserved: the fallback needs its own
                kwargs["id"] = run_id = _new_run_id()
                # offline needs no network; only a busy machine makes it slow, so be patient
                kwargs["settings"] = wandb.Settings(init_timeout=max(settings.init_timeout, 120), console="off",
                                                    silent=True)
            try:
                self.wb = wandb.init(mode=mode, **kwargs)
                break
            except Exception as exc:  # network, auth, timeouts: all mean "no W&B this way"
                reason = " ".join(str(exc).split())[:300]
                then = f"logging offline to {run.run_dir / 'wandb'} instead (upload later with `wandb sync`)" \
                    if mode == "online" else "training continues without W&B"
                _warn(f"W&B failed to start in {mode} mode ({type(exc).__name__}: {reason}); {then}")
        if self.wb is None:
            return
        run.extra[RUN_ID_KEY] = run_id
        self.wb.define_metric(STEP_KEY)
        self.wb.define_metric("*", step_metric=STEP_KEY)

    def _media(self, name: str, value):
        import wandb

        if isinstance(value, (str, Path)):
            path = str(value)
            return wandb.Video(path, format="gif") if path.endswith(".gif") else wandb.Image(path)
        if torch.is_tensor(value):
            return wandb.Image(grid_array(value), caption=f"{name} at step {self.run.step}")
        return value

    def on_log(self, run, control, metrics, images) -> None:
        step = run.step
        if self.wb is None:
            return
        try:
            record = {STEP_KEY: step, **metrics}
            record.update({f"samples/{name}": self._media(name, value) for name, value in images.items()})
            self.wb.log(record)
        except Exception as exc:
            if not self.log_failed:  # one warning, not one per step
                self.log_failed = True
                _warn(f"W&B logging failed ({type(exc).__name__}: {exc}); training continues")

    def on_run_end(self, run, control, status) -> None:
        if self.wb is None:
            return
        try:
            self.wb.summary["status"] = status
            self.wb.finish(exit_code=0 if status == "completed" else 1)
        except Exception as exc:
            _warn(f"W&B did not finish cleanly ({type(exc).__name__}: {exc})")
        self.wb = None
