"""TensorBoard logger: scalars on genframe's global step, sample grids as images, the resolved config as
hparams with the final metrics; resumable, never fatal.

Event files go to ``logging.tensorboard.log_dir`` (default ``RUN_DIR/tensorboard``). A resume appends a
new event file to the same folder whose first record purges anything logged after the checkpoint
(TensorBoard's ``purge_step``), so steps continue without duplicates; a rollback does the same. Each
metric is its own scalar tag (``loss``, ``val/cdiv``, ...), each picture an image tag
(``samples/NAME``). At the end of a training run the resolved config, flattened to dotted keys, is
written as hparams whose metrics are the tags logged, so TensorBoard's HParams tab shows their final
values. A failed write warns once and training goes on. Only rank 0 logs. ``tensorboard`` (the
``genframe[tensorboard]`` extra) is imported only when a run uses this logger.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from genframe.config.sections import config_to_dict
from genframe.contracts.errors import ConfigError
from genframe.contracts.listeners import Logger
from genframe.util.images import grid_array
from genframe.util.text import describe

LOG_DIR = "tensorboard"
MISSING = "logger 'tensorboard' needs the tensorboard package: pip install 'genframe[tensorboard]'"


class TensorBoardWarning(UserWarning):
    """TensorBoard failed; training continues."""


def _warn(message: str) -> None:
    warnings.warn(f"genframe: {message}", TensorBoardWarning, stacklevel=3)


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, int | float | str | bool]:
    """``config`` as dotted keys with values TensorBoard's hparams accept: numbers, strings and booleans
    as they are, anything else (lists, None) as its JSON text."""
    flat: dict[str, int | float | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_hparams(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


def log_dir_of(run) -> Path:
    configured = run.config.logging.tensorboard.log_dir
    return Path(configured) if configured is not None else Path(run.run_dir) / LOG_DIR


class TensorBoardLogger(Logger):
    def __init__(self, run) -> None:
        super().__init__(run)
        self.writer = None
        self.failed = False
        self.final: dict[str, float] = {}  # each metric's latest value, for the hparams at the end

    @classmethod
    def check(cls, config) -> None:
        try:
            import tensorboard  # noqa: F401 - only whether it is there
        except ImportError:
            raise ConfigError(MISSING) from None

    def _open(self, run, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir_of(run)), purge_step=purge_step)

    def _failed(self, what: str, exc: Exception) -> None:
        if not self.failed:  # one warning, not one per step
            self.failed = True
            _warn(f"TensorBoard {what} failed ({describe(exc)[:300]}); training continues")

    def on_run_start(self, run, control) -> None:
        if not run.is_main:
            return
        # a resumed training run hides what the last session logged after its checkpoint: no duplicates
        purge = run.step + 1 if run.resumed and run.purpose == "train" else None
        try:
            self._open(run, purge)
        except Exception as exc:  # not importable, log_dir not writable, ...
            _warn(f"TensorBoard failed to start ({describe(exc)[:300]}); training continues without it")
            self.writer = None

    def _image(self, value) -> Any | None:
        """An (H, W) or (H, W, 3) uint8 array, or None for what is no still picture (the chain GIF)."""
        if torch.is_tensor(value):
            return grid_array(value)
        import numpy as np
        from PIL import Image

        with Image.open(value) as image:
            if getattr(image, "n_frames", 1) > 1:  # an animation: TensorBoard has no GIF images
                return None
            return np.asarray(image.convert("RGB"))

    def on_log(self, run, control, metrics, images) -> None:
        step = run.step
        if self.writer is None:
            return
        try:
            for name, value in metrics.items():
                self.writer.add_scalar(name, float(value), global_step=step)
                self.final[name] = float(value)
            for name, value in images.items():
                array = self._image(value)
                if array is not None:
                    self.writer.add_image(f"samples/{name}", array, global_step=step,
                                          dataformats="HW" if array.ndim == 2 else "HWC")
        except Exception as exc:
            self._failed("logging", exc)

    def on_checkpoint(self, run, control, path) -> None:
        if self.writer is None:
            return
        try:  # what a checkpoint keeps, TensorBoard has on disk too
            self.writer.flush()
        except Exception as exc:
            self._failed("flush", exc)

    def on_rollback(self, run, control, reason) -> None:
        step = run.step
        if self.writer is None:
            return
        try:  # a fresh event file that purges the steps after ``step``: they are void
            self.writer.close()
            self._open(run, step + 1)
        except Exception as exc:
            self._failed("reopening after a rollback", exc)
            self.writer = None

    def _hparams(self, run, status: str) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = {name: value for name, value in self.final.items() if math.isfinite(value)}
        experiment, start, end = hparams(flat_hparams(config_to_dict(run.config)), metrics)
        if status != "completed":
            end.value[0].metadata.plugin_data.content = _session_end(status)
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, start, end):  # the metrics' values are the scalars already logged
            file_writer.add_summary(summary, global_step=run.step)

    def on_run_end(self, run, control, status) -> None:
        if self.writer is None:
            return
        try:
            if run.purpose == "train" and self.final:
                self._hparams(run, status)
            self.writer.close()
        except Exception as exc:
            _warn(f"TensorBoard did not finish cleanly ({describe(exc)[:300]})")
        self.writer = None


def _session_end(status: str) -> bytes:
    """The hparams plugin's session-end record for a run that did not complete."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    # interrupted: not finished, ``--resume`` continues it (the hparams plugin has no "aborted")
    code = api_pb2.STATUS_RUNNING if status == "interrupted" else api_pb2.STATUS_FAILURE
    data = plugin_data_pb2.HParamsPluginData(version=0, session_end_info=plugin_data_pb2.SessionEndInfo(status=code))
    return data.SerializeToString()
