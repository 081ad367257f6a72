"""The TensorBoard logger on the real package: a tiny ebm run on MNIST, read back with TensorBoard's own
reader (``EventAccumulator``), not by file existence."""

from __future__ import annotations

import json
import sys

import listening
import pytest
from click.testing import CliRunner
from conftest import TINY

import genframe
from genframe.cli.main import cli
from genframe.config.sections import RecipeConfig
from genframe.contracts.errors import ConfigError
from genframe.loggers.tensorboard_logger import MISSING, TensorBoardLogger, TensorBoardWarning, flat_hparams

TB = 'logging.loggers=["jsonl","tensorboard"]'
SMALL = [*TINY, "data.limit=64", "trainer.max_steps=4", TB]  # 4-step epochs: validation at step 4


def events(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    guidance = {"scalars": 0, "images": 0, "tensors": 0}  # 0: keep everything
    return EventAccumulator(str(log_dir), size_guidance=guidance).Reload()


def jsonl(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def scalar_series(ea, tag) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in ea.Scalars(tag)]


def plugin_data(ea, tag):
    from tensorboard.plugins.hparams import plugin_data_pb2

    return plugin_data_pb2.HParamsPluginData.FromString(ea.PluginTagToContent("hparams")[tag])


def test_scalars_images_and_hparams_read_back_equal_metrics_jsonl(data_dir, tmp_path):
    run = tmp_path / "run"
    result = genframe.train("ebm", overrides=SMALL, run_dir=run, quiet=True)
    assert result.status == "completed" and result.step == 4
    ea = events(run / "tensorboard")
    records = jsonl(run)
    expected: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        for key, value in record.items():
            if key not in ("step", "time") and (key != "epoch" or "val/cdiv" in record):  # epoch: a val metric
                expected.setdefault(key, []).append((record["step"], value))
    assert {"loss", "cdiv", "real", "fake", "val/cdiv", "epoch"} <= set(expected)
    assert set(ea.Tags()["scalars"]) == set(expected)
    for tag, series in expected.items():  # TensorBoard keeps float32
        got = scalar_series(ea, tag)
        assert [s for s, _ in got] == [s for s, _ in series], tag
        assert [v for _, v in got] == pytest.approx([v for _, v in series], rel=1e-6), tag
    assert [s for s, _ in scalar_series(ea, "loss")] == [2, 4]

    for tag in ("samples/samples", "samples/buffer"):  # 8 samples: a 3x3 grid of 32 px images, 2 px gaps
        (image,) = ea.Images(tag)
        assert (image.step, image.width, image.height) == (4, 3 * 34 + 2, 3 * 34 + 2)
        assert image.encoded_image_string.startswith(b"\x89PNG")

    experiment = plugin_data(ea, "_hparams_/experiment").experiment
    assert {m.name.tag for m in experiment.metric_infos} == set(expected)  # the final metrics
    start = plugin_data(ea, "_hparams_/session_start_info").session_start_info
    hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert hparams["trainer.max_steps"] == 4 and hparams["sampler.step_size"] == 10.0
    assert hparams["data.name"] == "mnist"
    assert json.loads(hparams["logging.loggers"]) == ["jsonl", "tensorboard"]
    assert {i.name for i in experiment.hparam_infos} == set(hparams)
    from tensorboard.plugins.hparams import api_pb2

    end = plugin_data(ea, "_hparams_/session_end_info").session_end_info
    assert end.status == api_pb2.STATUS_SUCCESS


def test_flat_hparams_uses_dotted_keys_and_accepted_types():
    flat = flat_hparams({"a": {"b": 1, "c": [16, 32], "d": None, "e": {"f": True}}, "g": "x", "h": 0.5, "i": {}})
    assert flat == {"a.b": 1, "a.c": "[16, 32]", "a.d": "null", "a.e.f": True, "g": "x", "h": 0.5, "i": "{}"}


def test_resume_appends_to_the_same_log_dir_and_continues_steps_without_duplicates(data_dir, tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    genframe.train("ebm", overrides=SMALL, run_dir=run, quiet=True)
    # what a session that crashed after its checkpoint at step 4 might have left: void on resume
    stale = SummaryWriter(str(run / "tensorboard"))
    stale.add_scalar("loss", 123.0, global_step=6)
    stale.close()
    genframe.train("ebm", overrides=["trainer.max_steps=8"], resume=run, quiet=True)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 3
    ea = events(run / "tensorboard")
    records = [r for r in jsonl(run) if "loss" in r]
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    loss = scalar_series(ea, "loss")
    assert [s for s, _ in loss] == [2, 4, 6, 8]
    assert [v for _, v in loss] == pytest.approx([r["loss"] for r in records], rel=1e-6)
    assert [i.step for i in ea.Images("samples/samples")] == [4, 8]


def test_a_failing_writer_warns_once_and_the_run_completes(data_dir, tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(SummaryWriter, "add_scalar", broken)
    with pytest.warns(TensorBoardWarning) as caught:
        result = genframe.train("ebm", overrides=SMALL, run_dir=tmp_path / "run", quiet=True)
    assert result.status == "completed" and result.step == 4
    mine = [w for w in caught if issubclass(w.category, TensorBoardWarning)]
    assert len(mine) == 1 and "TensorBoard logging failed (OSError: disk full); training continues" in str(
        mine[0].message)
    assert [r["step"] for r in jsonl(tmp_path / "run") if "loss" in r] == [2, 4]  # the other loggers went on


def test_check_names_the_extra_when_tensorboard_is_missing(monkeypatch):
    TensorBoardLogger.check(RecipeConfig())  # installed: nothing to say
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` raises ImportError
    with pytest.raises(ConfigError) as error:
        TensorBoardLogger.check(RecipeConfig())
    assert str(error.value) == MISSING == (
        "logger 'tensorboard' needs the tensorboard package: pip install 'genframe[tensorboard]'")


def test_cli_says_so_in_one_line_before_any_run_directory(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["run", "ebm", "--set", 'logging.loggers=["console","tensorboard"]',
                                      "--run-dir", str(run)])
    assert result.exit_code == ConfigError.exit_code
    assert [line for line in result.output.splitlines() if line.strip()] == [f"Error: {MISSING}"]
    assert not run.exists()


def test_drawn_pictures_are_read_from_their_png_and_log_dir_is_a_setting(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    png, gif = tmp_path / "scatter.png", tmp_path / "chain.gif"
    Image.new("RGB", (60, 40), (200, 10, 10)).save(png)  # what a non-image recipe draws (e.g. toy2d)
    frames = [Image.new("L", (8, 8), shade) for shade in (0, 255)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    config = RecipeConfig()
    config.logging.tensorboard.log_dir = str(tmp_path / "elsewhere")
    run = SimpleNamespace(config=config, run_dir=tmp_path / "run", is_main=True, resumed=False, purpose="train",
                          step=3)
    logger = TensorBoardLogger(run)
    listening.start(logger, run)
    listening.log(logger, run, 3, {"loss": 0.5}, {"samples": png, "chain": gif})
    listening.end(logger, run, "interrupted")
    assert not (tmp_path / "run").exists()
    ea = events(tmp_path / "elsewhere")
    (image,) = ea.Images("samples/samples")
    assert (image.step, image.width, image.height) == (3, 60, 40)
    assert ea.Tags()["images"] == ["samples/samples"]  # an animation is no still picture: left out
    assert scalar_series(ea, "loss") == [(3, 0.5)]
    from tensorboard.plugins.hparams import api_pb2

    end = plugin_data(ea, "_hparams_/session_end_info").session_end_info
    assert end.status == api_pb2.STATUS_RUNNING  # resumable, not failed
