"""The MLflow logger on tiny real runs, read back from a local SQLite tracking store with MlflowClient."""

from __future__ import annotations

import json
import sys
import warnings

import listening
import pytest
from click.testing import CliRunner
from conftest import TINY

import genframe
from genframe.cli.main import cli
from genframe.loggers.mlflow_logger import MlflowLogger, MlflowWarning, flatten

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # the real MLflow client and its SQLite store: seconds each

MLFLOW = 'logging.loggers=["jsonl", "mlflow"]'


def store(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


def train(run_dir, *overrides, **kwargs):
    with warnings.catch_warnings():  # the tests' own store: SQLAlchemy's deprecations are not ours to show
        warnings.simplefilter("ignore", DeprecationWarning)
        return genframe.train("ebm", overrides=list(overrides), run_dir=run_dir, quiet=True, **kwargs)


def run_id_of(run_dir) -> str:
    return genframe.load(run_dir).extra["mlflow_run_id"]


def jsonl(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def history(client, run_id, key) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_params_metrics_grids_and_checkpoint_in_a_sqlite_store(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("genframe.loggers.mlflow_logger.PARAMS_PER_BATCH", 10)  # several batches of params
    run = tmp_path / "run"
    result = train(run, *TINY, "trainer.max_steps=4", MLFLOW, f"logging.mlflow.tracking_uri={store(tmp_path)}",
                   "logging.mlflow.experiment=tests")
    assert result.status == "completed"
    client = MlflowClient(store(tmp_path))
    run_id = run_id_of(run)
    record = client.get_run(run_id)
    assert record.info.status == "FINISHED" and record.info.run_name == "run"
    assert client.get_experiment(record.info.experiment_id).name == "tests"
    rows = jsonl(run)
    keys = {key for row in rows for key in row} - {"step", "epoch", "time"}
    assert {"loss", "cdiv", "real", "fake"} <= keys
    for key in keys:  # every value at every step, exactly as metrics.jsonl has it
        assert history(client, run_id, key) == [(row["step"], row[key]) for row in rows if key in row]
    params = record.data.params
    config = genframe.load(run).config
    assert params["trainer.lr"] == str(config.trainer.lr) and params["trainer.max_steps"] == "4"
    assert params["logging.loggers"] == '["jsonl", "mlflow"]'
    assert len(params) == len(flatten(config.model_dump(mode="json"))) > 10  # every batch arrived
    samples = sorted(f.path for f in client.list_artifacts(run_id, "samples"))
    assert samples == ["samples/final_chain.gif", "samples/step0000004_buffer.png", "samples/step0000004_samples.png"]
    (checkpoint,) = client.list_artifacts(run_id, "checkpoint")
    assert checkpoint.path == "checkpoint/last.pt" and checkpoint.file_size == result.checkpoint.stat().st_size
    # the store's artifacts sit beside its database, not under the current folder
    assert (tmp_path / "mlartifacts").is_dir() and not (run / "mlflow.db").exists()


def test_resume_continues_the_same_mlflow_run_without_duplicates(data_dir, tmp_path):
    run = tmp_path / "run"
    train(run, *TINY, "trainer.max_steps=4", MLFLOW, f"logging.mlflow.tracking_uri={store(tmp_path)}")
    run_id = run_id_of(run)
    train(None, "trainer.max_steps=6", "logging.log_every=1", resume=run)
    assert run_id_of(run) == run_id
    client = MlflowClient(store(tmp_path))
    (only,) = client.search_runs([client.get_experiment_by_name("genframe").experiment_id])
    assert only.info.run_id == run_id and only.info.status == "FINISHED"
    steps = [step for step, _ in history(client, run_id, "loss")]
    assert steps == [2, 4, 5, 6]  # no step twice
    rows = jsonl(run)
    assert history(client, run_id, "loss") == [(row["step"], row["loss"]) for row in rows if "loss" in row]
    # an MLflow param never changes: the first value stays, the resumed one is a tag
    assert only.data.params["trainer.max_steps"] == "4" and only.data.tags["resumed.trainer.max_steps"] == "6"
    (checkpoint,) = client.list_artifacts(run_id, "checkpoint")
    assert checkpoint.file_size == (run / "checkpoints" / "last.pt").stat().st_size  # the final one, replaced


def test_the_default_store_is_a_sqlite_file_beside_the_run_unless_the_environment_names_one(
        data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = tmp_path / "run"
    train(run, *TINY, "trainer.max_steps=2", MLFLOW)
    client = MlflowClient(f"sqlite:///{run}/mlflow.db")
    run_id = run_id_of(run)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert [step for step, _ in history(client, run_id, "loss")] == [2]
    assert (run / "mlartifacts").is_dir() and client.list_artifacts(run_id, "checkpoint")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/env.db")
    other = tmp_path / "other"
    train(other, *TINY, "trainer.max_steps=2", MLFLOW)
    assert not (other / "mlflow.db").exists()
    assert MlflowClient(f"sqlite:///{tmp_path}/env.db").get_run(run_id_of(other)).info.status == "FINISHED"


def test_a_failing_mlflow_warns_once_and_training_goes_on(data_dir, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("tracking store unreachable")

    monkeypatch.setattr(MlflowClient, "log_batch", broken)
    run = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(run, *TINY, "trainer.max_steps=4", MLFLOW, f"logging.mlflow.tracking_uri={store(tmp_path)}")
    assert result.status == "completed" and result.step == 4
    ours = [w for w in caught if issubclass(w.category, MlflowWarning)]
    assert len(ours) == 1 and "tracking store unreachable" in str(ours[0].message)
    assert "training continues" in str(ours[0].message)
    assert [row["step"] for row in jsonl(run)] == [2, 4]  # the other loggers were untouched
    client = MlflowClient(store(tmp_path))
    assert client.get_run(run_id_of(run)).info.status == "FINISHED"  # what did work still ended the run


def test_a_store_that_cannot_open_warns_once_and_training_goes_on(data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(MlflowWarning, match="MLflow could not start, so this run logs nothing there"):
        result = train(tmp_path / "run", *TINY, "trainer.max_steps=2", MLFLOW,
                       f"logging.mlflow.tracking_uri=sqlite:///{blocker}/mlflow.db")
    assert result.status == "completed"
    assert "mlflow_run_id" not in genframe.load(tmp_path / "run").extra


@pytest.mark.parametrize(("status", "expected"), [("interrupted", "KILLED"), ("failed", "FAILED")])
def test_a_run_that_stops_early_ends_killed_or_failed(tmp_path, status, expected):
    import torch
    from genframe_ebm.config import EBMConfig

    from genframe.contracts.context import RunContext

    config = EBMConfig(logging={"mlflow": {"tracking_uri": store(tmp_path)}})
    ctx = RunContext(tmp_path / "run", "ebm", config, torch.device("cpu"), steps_per_epoch=10, total_steps=10)
    logger = MlflowLogger(ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        listening.start(logger, ctx)
    listening.log(logger, ctx, 3, {"loss": 0.5}, {})
    listening.end(logger, ctx, status)
    client = MlflowClient(store(tmp_path))
    assert client.get_run(ctx.extra["mlflow_run_id"]).info.status == expected
    assert history(client, ctx.extra["mlflow_run_id"], "loss") == [(3, 0.5)]


def test_params_are_flat_dotted_and_cut_to_mlflows_limit():
    flat = flatten({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": "x" * 7000, "f": None, "g": True})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "a.d": "{}", "e": "x" * 6000, "f": "null", "g": "true"}


def test_a_missing_mlflow_is_one_error_line_before_any_run_directory(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "ebm", "--set", 'logging.loggers=["console", "mlflow"]',
                                      "--run-dir", str(run)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: logger 'mlflow' needs the mlflow package: pip install 'genframe[mlflow]'"]
    assert not run.exists()


def test_a_sqlite_store_without_sqlalchemy_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    result = CliRunner().invoke(cli, ["run", "ebm", "--set", 'logging.loggers=["mlflow"]',
                                      "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "needs sqlalchemy and alembic: pip install 'genframe[mlflow]'" in result.output
    assert not (tmp_path / "run").exists()


def test_an_evaluation_reports_into_the_run_without_reopening_it(data_dir, tmp_path):
    run = tmp_path / "run"
    train(run, *TINY, "trainer.max_steps=2", MLFLOW, f"logging.mlflow.tracking_uri={store(tmp_path)}")
    run_id = run_id_of(run)
    client = MlflowClient(store(tmp_path))
    ended = client.get_run(run_id).info.end_time
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        genframe.evaluate(run, n=20, steps=2, device="cpu")
    record = client.get_run(run_id)
    assert record.info.status == "FINISHED" and record.info.end_time == ended  # the training's status stays
    assert history(client, run_id, "eval/n") == [(2, 20.0)]
    (checkpoint,) = client.list_artifacts(run_id, "checkpoint")  # logged once, by the training
