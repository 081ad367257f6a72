"""Loggers as plugins: W&B (real package, offline, read back from disk), console, jsonl, third-party, plot."""

from __future__ import annotations

import json
import socket
import sys
import warnings

import listening
import pytest
import wandb_records
from click.testing import CliRunner
from conftest import TINY
from PIL import Image
from test_plugins import make_distribution

import genframe
from genframe.cli.main import cli
from genframe.loggers.wandb_logger import WandbWarning

SMALL = [*TINY, "data.limit=64", "trainer.max_steps=6"]  # 4-step epochs: validation at step 4
WANDB = ['logging.loggers=["jsonl", "wandb"]', "logging.wandb.mode=offline", "logging.wandb.project=tests"]


def wandb_files(run_dir, timeout: float = 60.0):
    """The offline datastores, once W&B's service has flushed each to its closing ``exit`` record
    (``finish()`` returns before the separate wandb-core process has written everything)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        files = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
        complete = files and all(any(r.WhichOneof("record_type") == "exit" for r in wandb_records.records(f))
                                 for f in files)
        if complete or time.monotonic() > deadline:
            return files
        time.sleep(0.2)


def test_wandb_offline_writes_metrics_config_and_pictures(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*SMALL, *WANDB], run_dir=run)
    (datastore,) = wandb_files(run)
    rows = wandb_records.history(datastore)
    assert [r["trainer/step"] for r in rows if "loss" in r] == [2, 4, 6]
    assert all({"loss", "reg", "cdiv", "real", "fake"} <= set(r) for r in rows if "loss" in r)
    (val,) = [r for r in rows if "val/cdiv" in r]
    assert val["trainer/step"] == 4 and val["epoch"] == 1
    images = [r for r in rows if "samples/samples/path" in r]
    assert [r["trainer/step"] for r in images] == [4, 6]  # end of epoch 1, end of run
    assert any("samples/buffer/path" in r for r in images)
    (final,) = [r for r in rows if "samples/chain/path" in r]
    media = datastore.parent / "files"
    assert (media / final["samples/chain/path"]).stat().st_size > 0
    for row in images:  # 8 samples: a 3x3 grid of 32-pixel images with 2-pixel gaps
        assert Image.open(media / row["samples/samples/path"]).size == (3 * 34 + 2, 3 * 34 + 2)
    config = wandb_records.config(datastore)
    assert config["trainer"]["max_steps"] == 6 and config["sampler"]["step_size"] == 10.0
    checkpoint = genframe.load(run)
    assert checkpoint.step == 6


def test_resuming_continues_the_same_wandb_run_without_dropping_steps(data_dir, tmp_path):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*SMALL, *WANDB, "trainer.max_steps=4"], run_dir=run)
    genframe.train("ebm", overrides=["trainer.max_steps=8"], resume=run)
    first, second = wandb_files(run)
    assert first.name == second.name  # run-<same id>.wandb: one W&B run
    rows = wandb_records.history(second)
    assert [r["trainer/step"] for r in rows if "loss" in r] == [6, 8]


@pytest.mark.slow
def test_wandb_that_cannot_start_never_stops_training(data_dir, tmp_path, monkeypatch):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    online = ['logging.loggers=["wandb"]', "logging.wandb.mode=online", "logging.wandb.init_timeout=3"]
    with pytest.warns(WandbWarning, match="W&B failed to start in online mode .* logging offline to"):
        result = genframe.train("ebm", overrides=[*SMALL, *online], run_dir=tmp_path / "run")
    assert result.status == "completed" and result.step == 6
    (datastore,) = wandb_files(tmp_path / "run")  # fell back to offline: nothing lost
    assert [r["trainer/step"] for r in wandb_records.history(datastore) if "loss" in r] == [2, 4, 6]


RECORDER = """
import json
import genframe

class Recorder(genframe.Logger):
    def _note(self, **event):
        with open(self.run.run_dir.parent / "events.jsonl", "a") as handle:
            handle.write(json.dumps(event) + "\\n")

    def on_run_start(self, run, control):
        self._note(hook="start", step=run.step)

    def on_log(self, run, control, metrics, images):
        lines = (run.run_dir / "metrics.jsonl").read_text().splitlines()
        self._note(hook="log", step=run.step, metrics=sorted(metrics), images=sorted(images),
                   jsonl_last=json.loads(lines[-1])["step"] if lines else None)

    def on_checkpoint(self, run, control, path):
        self._note(hook="checkpoint", step=run.step, exists=path.is_file())

    def on_run_end(self, run, control, status):
        self._note(hook="end", status=status)

@genframe.hookimpl
def genframe_register(registry):
    registry.add("logger", "recorder", Recorder)
"""
# The same logger written for genframe 0.1: the old import path and pluggy lifecycle hooks.
OLD_RECORDER = """
import json
import genframe
from genframe.interfaces import Logger

class Recorder(Logger):
    def _note(self, **event):
        with open(self.run.run_dir.parent / "events.jsonl", "a") as handle:
            handle.write(json.dumps(event) + "\\n")

    @genframe.hookimpl
    def genframe_run_start(self, run):
        self._note(hook="start", step=run.step)

    @genframe.hookimpl
    def genframe_log(self, run, step, metrics, images):
        lines = (run.run_dir / "metrics.jsonl").read_text().splitlines()
        self._note(hook="log", step=step, metrics=sorted(metrics), images=sorted(images),
                   jsonl_last=json.loads(lines[-1])["step"] if lines else None)

    @genframe.hookimpl
    def genframe_checkpoint(self, run, path, step):
        self._note(hook="checkpoint", step=step, exists=path.is_file())

    @genframe.hookimpl
    def genframe_run_end(self, run, status):
        self._note(hook="end", status=status)

@genframe.hookimpl
def genframe_register(registry):
    registry.add("logger", "recorder", Recorder)
"""


@pytest.mark.parametrize("source", [RECORDER, OLD_RECORDER], ids=["points", "old hooks"])
def test_a_third_party_logger_hears_every_point(data_dir, tmp_path, monkeypatch, source):
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "genframe_recorder", "recorder", "gf_recorder_plugin", source)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "gf_recorder_plugin", raising=False)
    genframe.reset_host()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        genframe.train("ebm", overrides=[*SMALL, 'logging.loggers=["jsonl", "recorder"]', "logging.sample_every=3"],
                       run_dir=tmp_path / "run")
    deprecated = [str(w.message) for w in caught if issubclass(w.category, genframe.GenframeDeprecationWarning)]
    about_hooks = [text for text in deprecated if "lifecycle hooks" in text]
    if source is OLD_RECORDER:  # one warning per run, saying what to change
        assert len(about_hooks) == 1 and "subclass genframe.Logger and override on_run_start" in about_hooks[0]
        assert any("importing genframe.interfaces is deprecated" in text for text in deprecated)
    else:
        assert deprecated == []
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[0] == {"hook": "start", "step": 0} and events[-1] == {"hook": "end", "status": "completed"}
    logs = [e for e in events if e["hook"] == "log" and "loss" in e["metrics"]]
    assert [e["step"] for e in logs] == [2, 4, 6]
    # metrics.jsonl is flushed as written: each earlier log line is on disk by the next log call
    assert [e["jsonl_last"] for e in logs[1:]] == [2, 4] or [e["jsonl_last"] for e in logs] == [2, 4, 6]
    pictures = [e for e in events if e["hook"] == "log" and e["images"]]
    assert [(e["step"], e["images"]) for e in pictures] == [(3, ["buffer", "samples"]), (6, ["buffer", "samples"]),
                                                            (6, ["chain"])]
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == [
        "final_chain.gif", "step0000003_buffer.png", "step0000003_samples.png",
        "step0000006_buffer.png", "step0000006_samples.png"]
    assert [e["step"] for e in events if e["hook"] == "checkpoint"] == [0, 4, 6]  # 0: something to roll back to
    assert all(e["exists"] for e in events if e["hook"] == "checkpoint")


def test_console_progress_and_quiet(data_dir, tmp_path):
    sets = [arg for item in SMALL for arg in ("--set", item)]
    runner = CliRunner()
    shown = runner.invoke(cli, ["run", "ebm", *sets, "--run-dir", str(tmp_path / "a")])
    assert shown.exit_code == 0, shown.output
    assert "img-steps/s" in shown.output and "eta" in shown.output and "loss=" in shown.output
    assert "epoch 1 done at step 4: val/cdiv=" in shown.output
    quiet = runner.invoke(cli, ["run", "ebm", *sets, "--quiet", "--run-dir", str(tmp_path / "b")])
    assert quiet.exit_code == 0 and "img-steps/s" not in quiet.output and "epoch 1 done" not in quiet.output
    assert (tmp_path / "b" / "metrics.jsonl").is_file()  # the other loggers still ran


def test_console_off_a_terminal_prints_at_most_every_interval(tmp_path):
    import io

    import torch
    from genframe_ebm.config import EBMConfig

    from genframe.contracts.context import RunContext
    from genframe.loggers.console import ConsoleLogger

    ctx = RunContext(tmp_path, "ebm", EBMConfig(trainer={"epochs": 3}), torch.device("cpu"), steps_per_epoch=10,
                     total_steps=30,
                     work_unit=("img-steps", 7680.0))
    stream = io.StringIO()  # not a terminal
    logger = ConsoleLogger(ctx, stream=stream)
    listening.start(logger, ctx)
    for step in range(1, 31):
        ctx.step, ctx.epoch, ctx.batch = step, (step - 1) // 10, (step - 1) % 10 + 1
        listening.log(logger, ctx, step, {"loss": 0.5, "cdiv": -0.1}, {})
    lines = stream.getvalue().splitlines()
    progress = [line for line in lines if "it/s" in line]
    assert len(progress) == 2  # the first line, then only the last step within 30 s
    assert "\r" not in stream.getvalue() and "img-steps/s" in progress[0] and "cdiv=-0.1" in progress[0]
    assert progress[-1].startswith("epoch 3/3 [####################] 10/10")


def test_console_rate_after_a_rollback_is_never_negative(tmp_path):
    import io

    import torch
    from genframe_ebm.config import EBMConfig

    from genframe.contracts.context import RunContext
    from genframe.loggers.console import ConsoleLogger

    ctx = RunContext(tmp_path, "ebm", EBMConfig(), torch.device("cpu"), steps_per_epoch=100, total_steps=1000)
    stream = io.StringIO()
    logger = ConsoleLogger(ctx, stream=stream)
    listening.start(logger, ctx)
    listening.log(logger, ctx, 300, {"loss": 0.5}, {})
    listening.rollback(logger, ctx, 200, "cdiv -3 beyond callbacks.divergence_guard.limit=1 ...")
    logger.last_plain = float("-inf")  # print the next line at once
    listening.log(logger, ctx, 210, {"loss": 0.5}, {})
    rates = [float(line.split(" it/s")[0].split()[-1]) for line in stream.getvalue().splitlines() if "it/s" in line]
    assert len(rates) == 2 and all(rate > 0 for rate in rates)  # 10 steps since the rollback, not -90


def test_console_shows_an_evaluation_on_its_own_line_without_a_rate_of_zero(tmp_path):
    import io

    import torch
    from genframe_ebm.config import EBMConfig

    from genframe.contracts.context import RunContext
    from genframe.loggers.console import ConsoleLogger

    ctx = RunContext(tmp_path, "ebm", EBMConfig(), torch.device("cpu"), steps_per_epoch=100, total_steps=1000,
                     work_unit=("img-steps", 7680.0))
    stream = io.StringIO()
    logger = ConsoleLogger(ctx, stream=stream)
    listening.start(logger, ctx)
    listening.log(logger, ctx, 300, {"loss": 0.5}, {})
    # an evaluation's report comes at the step just logged: no steps since, so no rate to tell (not 0.00 it/s)
    logger.last_plain = float("-inf")
    listening.log(logger, ctx, 300, {"eval/fd": 81.25, "eval/n": 1000}, {})
    logger.last_plain = float("-inf")
    listening.log(logger, ctx, 300, {"other": 2.0}, {})  # any other report at that step: no rate either
    logger.last_plain = float("-inf")
    listening.log(logger, ctx, 310, {"loss": 0.25}, {})
    listening.log(logger, ctx, 310, {"eval/fd": 40.5, "eval/n": 1000}, {})  # shown at once, within the interval
    lines = stream.getvalue().splitlines()[1:]
    # a rate of zero, not any rate whose digits end in 0.00 (a fast machine logs 734430.00 it/s here)
    assert not any(" 0.00 it/s" in line for line in lines), lines
    assert lines[1] == "evaluation at step 300: eval/fd=81.25 eval/n=1000", lines
    assert "it/s" not in lines[2] and "eta" not in lines[2] and lines[2].endswith(" 0/100 other=2"), lines
    rates = [float(line.split(" it/s")[0].split()[-1]) for line in lines if "it/s" in line]
    assert len(rates) == 2 and all(rate > 0 for rate in rates), lines  # 10 steps since step 300, not 0 since the report
    assert lines[-1] == "evaluation at step 310: eval/fd=40.5 eval/n=1000", lines


@pytest.mark.slow
def test_plot_draws_the_curves_of_one_run_and_overlays_several(data_dir, tmp_path):
    from genframe.using.plot import runs_figure

    run, other = tmp_path / "run", tmp_path / "other"
    genframe.train("ebm", overrides=SMALL, run_dir=run, quiet=True)
    genframe.train("ebm", overrides=[*SMALL, "seed=1"], run_dir=other, quiet=True)
    result = CliRunner().invoke(cli, ["plot", str(run)])
    assert result.exit_code == 0 and Image.open(run / "curves.png").format == "PNG"
    figure = runs_figure([run])
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles == ["loss", "reg", "cdiv", "real", "fake"]  # val/X shares X's panel
    assert [line.get_label() for line in figure.axes[2].get_lines()] == ["cdiv", "val/cdiv"]
    both = CliRunner().invoke(cli, ["plot", str(run), str(other), "--metric", "cdiv", "--out", str(tmp_path / "c.svg")])
    assert both.exit_code == 0 and (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    (ax,) = [ax for ax in runs_figure([run, other], ["cdiv"]).axes if ax.get_visible()]
    assert [line.get_label() for line in ax.get_lines()] == ["run", "run (val)", "other", "other (val)"]
    assert ax.get_yscale() == "linear"
    bad = CliRunner().invoke(cli, ["plot", str(run), "--metric", "nope"])
    assert bad.exit_code == 2 and "no metric nope" in bad.output
    wrong = CliRunner().invoke(cli, ["plot", str(run), "--out", str(tmp_path / "c.jpeg")])
    assert wrong.exit_code == 2 and "give a file ending in .png, .svg, .pdf" in wrong.output


def test_fd_is_drawn_on_a_log_axis_and_a_missing_matplotlib_is_one_line(tmp_path, monkeypatch):
    import json
    import sys

    from genframe.contracts.errors import RunError
    from genframe.using.plot import plot_curves, runs_figure

    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": 100 * i, "loss": 1.0 / i, "eval/fd": 300.0 / i ** 2, "eval/n": 1000} for i in range(1, 5)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    axes = {ax.get_title(): ax for ax in runs_figure([run]).axes if ax.get_visible()}
    assert set(axes) == {"loss", "eval/fd"}  # eval/n is a count, not a curve
    assert axes["eval/fd"].get_yscale() == "log" and axes["loss"].get_yscale() == "linear"
    curves = {f"fast run {seed}": [(6.0, 200.0 / (seed + 1)), (60.0, 2.0 + seed)] for seed in range(3)}
    out = plot_curves(curves, tmp_path / "quality.png", xlabel="minutes", log_y=True)
    assert Image.open(out).format == "PNG"
    with pytest.raises(RunError, match="log axis needs positive values"):
        plot_curves({"fd": [(1.0, 3.0), (2.0, 0.0)]}, tmp_path / "bad.png", log_y=True)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if not installed
    missing = CliRunner().invoke(cli, ["plot", str(run)])
    assert missing.exit_code == 2 and missing.output.strip().splitlines() == [
        "Error: drawing curves needs matplotlib, which is not installed: pip install matplotlib"]


def test_console_on_a_terminal_draws_a_tqdm_bar_that_follows_a_rollback(tmp_path):
    import io

    import torch
    from genframe_ebm.config import EBMConfig

    from genframe.contracts.context import RunContext
    from genframe.loggers.console import ConsoleLogger

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    ctx = RunContext(tmp_path, "ebm", EBMConfig(trainer={"epochs": 3}), torch.device("cpu"), steps_per_epoch=10,
                     total_steps=30, work_unit=("img-steps", 7680.0))
    stream = Terminal()
    logger = ConsoleLogger(ctx, stream=stream)
    listening.start(logger, ctx)
    assert logger.bar is not None and logger.bar.total == 30
    for step in range(1, 21):
        ctx.step, ctx.epoch, ctx.batch = step, (step - 1) // 10, (step - 1) % 10 + 1
        listening.log(logger, ctx, step, {"loss": 0.5, "cdiv": -0.1}, {})
    assert logger.bar.n == 20 and logger.bar.postfix and "cdiv=-0.1" in logger.bar.postfix
    listening.log(logger, ctx, 20, {"val/loss": 0.4}, {})  # printed above the bar
    listening.rollback(logger, ctx, 10, "cdiv -3 beyond the limit")
    assert logger.bar.n == logger.bar.initial == 10  # a new bar: its rate counts steps from here, not from 0
    ctx.step = 10
    listening.end(logger, ctx, "completed")
    assert logger.bar is None
    text = stream.getvalue()
    assert "\r" in text and "epoch 2/3" in text and "20/30" in text  # tqdm's own bar, redrawn in place
    assert "epoch 2 done at step 20: val/loss=0.4" in text and "genframe: run completed at step 10" in text


def test_sample_progress_is_a_tqdm_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
    import io

    from genframe.cli.main import progress_reporter

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, expected in ((Terminal(), "sampling: 100%"), (io.StringIO(), "sampling: 600/1000\nsampling: 1000/1000")):
        monkeypatch.setattr("sys.stderr", stream)
        with progress_reporter(1000, "sampling") as report:
            report(600)
            report(400)
        assert expected in stream.getvalue()
        assert ("\r" in stream.getvalue()) == isinstance(stream, Terminal)
