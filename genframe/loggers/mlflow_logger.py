"""MLflow logger: the resolved config as params, metrics on genframe's global step, sample grids and the
final checkpoint as artifacts; resumable, never fatal.

Everything goes through an ``MlflowClient`` bound to one tracking store, never MLflow's fluent API, so no
global active run is left in the user's process. The store is ``logging.mlflow.tracking_uri``, else
``$MLFLOW_TRACKING_URI``, else a SQLite file beside the run (``RUN_DIR/mlflow.db``, artifacts in
``RUN_DIR/mlartifacts``): MLflow 3 keeps its ``./mlruns`` file store in maintenance mode and refuses it
unless ``MLFLOW_ALLOW_FILE_STORE=true``, so SQLite is the local default. The MLflow run id lives in the
checkpoint (``run.extra``), so resuming a genframe run continues the same MLflow run. MLflow trouble never
stops training: a failure warns once and training goes on. Only rank 0 logs. mlflow is imported only when
a run uses this logger.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from genframe.config.sections import config_to_dict
from genframe.contracts.errors import ConfigError
from genframe.contracts.listeners import Logger
from genframe.util.text import describe

RUN_ID_KEY = "mlflow_run_id"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value's length
PARAMS_PER_BATCH = 100  # and on params in one log_batch call
METRICS_PER_BATCH = 1000
STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
INSTALL = "pip install 'genframe[mlflow]'"


class MlflowWarning(UserWarning):
    """MLflow failed; training continues."""


def _warn(message: str) -> None:
    warnings.warn(f"genframe: {message}", MlflowWarning, stacklevel=3)


def tracking_uri(config: Any, run_dir: Path | None) -> str | None:
    """The store a run logs to: the setting, else $MLFLOW_TRACKING_URI, else ``RUN_DIR/mlflow.db``
    (None when there is no run directory yet and nothing else is set)."""
    uri = config.logging.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return None if run_dir is None else f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


def flatten(data: dict, prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"trainer.lr": "0.0001", ...}``; lists and empty tables as JSON."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            flat[name] = text[:MAX_PARAM_VALUE]
    return flat


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def _quiet():
    """MLflow and alembic announce creating a store's tables at INFO, SQLAlchemy warns of its own
    deprecations: none of it is the user's business during a run."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class MlflowLogger(Logger):
    def __init__(self, run) -> None:
        super().__init__(run)
        self.client = None
        self.run_id: str | None = None
        self.failed = False  # warned once already
        self.checkpoint: Path | None = None
        self.created = False  # this process opened a new MLflow run (so it also ends it)

    @classmethod
    def check(cls, config: Any) -> None:
        try:
            import mlflow.tracking  # noqa: F401
        except ImportError:
            raise ConfigError(f"logger 'mlflow' needs the mlflow package: {INSTALL}") from None
        uri = tracking_uri(config, Path("."))
        if uri.startswith("sqlite:"):
            try:
                import alembic  # noqa: F401
                import sqlalchemy  # noqa: F401
            except ImportError:
                raise ConfigError(f"logger 'mlflow' with a SQLite store ({uri}) needs sqlalchemy and alembic: "
                                  f"{INSTALL}") from None

    def _failure(self, what: str, exc: BaseException) -> None:
        """``what`` went wrong: one warning for the whole run, not one per step."""
        if not self.failed:
            self.failed = True
            _warn(f"MLflow {what} ({describe(exc)[:300]}); training continues")

    # --- start ----------------------------------------------------------------------------------------
    def on_run_start(self, run, control) -> None:
        if not run.is_main:
            return
        try:
            with _quiet():
                existing = self._start(run)
        except Exception as exc:  # an unreachable server, a locked database: no MLflow this run
            self.client = self.run_id = None
            self._failure("could not start, so this run logs nothing there", exc)
            return
        try:
            self._log_params(run, existing)
        except Exception as exc:  # the run is open: metrics and artifacts may still get through
            self._failure("logging failed", exc)

    def _start(self, run) -> dict[str, str]:
        """Open the MLflow run (a resume's own, else a new one); its params so far."""
        from mlflow.tracking import MlflowClient

        settings = run.config.logging.mlflow
        uri = tracking_uri(run.config, run.run_dir)
        client = MlflowClient(tracking_uri=uri)
        previous = run.extra.get(RUN_ID_KEY)
        existing: dict[str, str] = {}
        if previous:
            try:
                found = client.get_run(previous)
                existing = dict(found.data.params)
                if run.purpose == "train":  # an evaluation reports into the run, it does not reopen it
                    client.update_run(previous, status="RUNNING")
                self.run_id = previous
            except Exception as exc:
                _warn(f"could not reopen MLflow run {previous} in {uri} ({type(exc).__name__}); "
                      "logging to a new MLflow run")
        if self.run_id is None:
            experiment = client.get_experiment_by_name(settings.experiment)
            if experiment is not None:
                experiment_id = experiment.experiment_id
            else:
                location = None
                if uri.startswith("sqlite:///"):  # artifacts beside the database, not under the current folder
                    location = (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
                experiment_id = client.create_experiment(settings.experiment, artifact_location=location)
            tags = {"genframe.recipe": run.recipe_name, "genframe.run_dir": str(Path(run.run_dir).resolve())}
            created = client.create_run(experiment_id, run_name=settings.run_name or Path(run.run_dir).name, tags=tags)
            self.run_id = created.info.run_id
            self.created = True
        self.client = client
        run.extra[RUN_ID_KEY] = self.run_id
        return existing

    def _log_params(self, run, existing: dict[str, str]) -> None:
        from mlflow.entities import Param

        params = flatten(config_to_dict(run.config))
        new = [Param(key, value) for key, value in params.items() if key not in existing]
        for chunk in _chunks(new, PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=chunk)
        for key, value in params.items():  # MLflow params never change: a resume's new values are tags
            if key in existing and existing[key] != value:
                self.client.set_tag(self.run_id, f"resumed.{key}", value)

    # --- during the run -------------------------------------------------------------------------------
    def on_log(self, run, control, metrics, images) -> None:
        step = run.step
        if self.client is None:
            return
        from mlflow.entities import Metric

        try:
            stamp = int(time.time() * 1000)
            points = [Metric(key, float(value), stamp, step) for key, value in metrics.items()
                      if isinstance(value, (int, float))]
            for chunk in _chunks(points, METRICS_PER_BATCH):
                self.client.log_batch(self.run_id, metrics=chunk)
            if images:
                self._log_images(step, images)
        except Exception as exc:
            self._failure("logging failed", exc)

    def _log_images(self, step: int, images: dict) -> None:
        import torch

        from genframe.util.images import save_grid

        with tempfile.TemporaryDirectory(prefix="genframe-mlflow-") as folder:
            for name, value in images.items():
                if isinstance(value, (str, Path)):
                    path = Path(value)
                elif torch.is_tensor(value):
                    path = save_grid(value, Path(folder) / f"step{step:07d}_{name}.png")
                else:
                    continue
                self.client.log_artifact(self.run_id, str(path), "samples")

    def on_checkpoint(self, run, control, path) -> None:
        self.checkpoint = Path(path)  # the last one is logged once, at the end

    def on_rollback(self, run, control, reason) -> None:
        step = run.step
        if self.client is None:
            return
        try:  # MLflow cannot drop the void points: say where they start
            self.client.set_tag(self.run_id, "genframe.rollback", f"rolled back to step {step}: {reason}"[:5000])
        except Exception as exc:
            self._failure("logging failed", exc)

    # --- end ------------------------------------------------------------------------------------------
    def on_run_end(self, run, control, status) -> None:
        if self.client is None:
            return
        if run.purpose != "train" and not self.created:  # an evaluation of a run: its status is the training's
            self.client = None
            return
        try:
            keep = run.purpose == "train" and run.config.logging.mlflow.log_checkpoint
            if keep and self.checkpoint is not None and self.checkpoint.is_file():
                self.client.log_artifact(self.run_id, str(self.checkpoint), "checkpoint")
        except Exception as exc:
            self._failure("could not log the checkpoint", exc)
        try:
            self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))
        except Exception as exc:
            self._failure(f"run {self.run_id} did not finish cleanly", exc)
        self.client = None
