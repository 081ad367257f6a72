"""Sample-quality metrics: calibrated on real data, the classifier cache, `genframe eval`, eval during training."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import TINY

import genframe
from genframe.cli.main import cli
from genframe.config.sections import DataConfig
from genframe.plugins.host import get_host
from genframe.using.classifier import ClassifierSpec, cache_dir, load_or_train
from genframe.using.evaluate import Evaluator
from genframe.using.metrics import frechet_distance, gaussian

QUICK = ClassifierSpec(epochs=1, train_limit=3000)
RULER = {"fd", "kid", "kid_std", "precision", "recall", "density", "knn_coverage", "confidence", "confident",
         "class_spread"}


@pytest.fixture(scope="module")
def mnist_evaluator():
    import os

    if not os.path.isdir(os.path.join(os.environ.get("GENFRAME_DATA_DIR", ""), "mnist")):
        pytest.skip("MNIST not found; set GENFRAME_DATA_DIR")
    return Evaluator(get_host().registry, DataConfig(name="mnist"))


def test_frechet_distance_of_known_gaussians():
    torch.manual_seed(0)
    a = torch.randn(4000, 3, dtype=torch.float64)
    assert frechet_distance(*gaussian(a), *gaussian(a)) < 1e-9
    shifted = a + torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)
    assert frechet_distance(*gaussian(a), *gaussian(shifted)) == pytest.approx(9.0, rel=1e-6)
    scaled = a * 2  # identity covariance vs 4 I: tr(I + 4I - 2 * 2I) = 3 per dimension... = 1 per dim
    assert frechet_distance(*gaussian(a), *gaussian(scaled)) == pytest.approx(3.0, rel=0.1)


def test_metric_is_zero_for_test_images_large_for_noise_and_in_between_for_blur(mnist_evaluator):
    test = genframe.get_host().registry.get("dataset", "mnist")(split="test")
    images = test.get_batch(torch.arange(len(test)))
    itself = mnist_evaluator(images)
    assert itself["fd"] < 1e-6 and itself["class_spread"] > 0.99 and itself["confidence"] > 0.95
    anchors = mnist_evaluator.anchors(1000)
    floor, noise = anchors["train"]["fd"], anchors["noise"]["fd"]
    assert floor < 30 and noise > 20 * floor
    blurred = F.avg_pool2d(images[:1000], 3, stride=1, padding=1, count_include_pad=False)
    blur = mnist_evaluator(blurred)["fd"]
    assert floor < blur < noise
    heavy = mnist_evaluator(F.avg_pool2d(images[:1000], 7, stride=1, padding=3, count_include_pad=False))["fd"]
    assert blur < heavy < noise  # the metric orders degradations
    ones = images[:1000][test.labels[:1000] == 1]
    assert mnist_evaluator(ones)["class_spread"] < 0.2  # one class only


def test_classifier_cache_is_reused_and_a_corrupted_cache_rebuilt(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GENFRAME_CACHE_DIR", str(tmp_path))
    train = genframe.get_host().registry.get("dataset", "mnist")(split="train")
    first = load_or_train("mnist", train, 10, QUICK)
    (cached,) = sorted(cache_dir().glob("mnist-*.pt"))

    import genframe.using.classifier as classifier

    def no_training(*args, **kwargs):
        raise AssertionError("the cached classifier should have been reused")

    monkeypatch.setattr(classifier, "train_classifier", no_training)
    again = load_or_train("mnist", train, 10, QUICK)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))

    cached.write_bytes(cached.read_bytes()[:-50] + b"x" * 50)  # bit rot
    monkeypatch.undo()
    monkeypatch.setenv("GENFRAME_CACHE_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="failed its checksum; retraining"):
        rebuilt = load_or_train("mnist", train, 10, QUICK)
    # deterministic training: the rebuilt classifier equals the first one, and the cache is whole again
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), rebuilt.state_dict().values()))
    assert load_or_train("mnist", train, 10, QUICK) is not None


def test_the_classifier_is_the_same_whatever_the_thread_count_of_the_process_that_trains_it(data_dir):
    # The cache keeps whichever process trained it first; every fd is measured with it.
    from genframe.using.classifier import train_classifier

    train = genframe.get_host().registry.get("dataset", "mnist")(split="train")
    spec = ClassifierSpec(epochs=1, train_limit=1024)
    threads = torch.get_num_threads()
    try:
        trained = {}
        for count in (1, 2):
            torch.set_num_threads(count)
            trained[count] = train_classifier(train, 10, spec).state_dict()
            assert torch.get_num_threads() == count  # the caller's setting is given back
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(trained[1][k], trained[2][k]) for k in trained[1])


def test_fashion_mnist_has_its_own_classifier(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GENFRAME_CACHE_DIR", str(tmp_path))
    evaluator = Evaluator(get_host().registry, DataConfig(name="fashion_mnist"), QUICK)
    assert sorted(p.name.split("-")[0] for p in cache_dir().glob("*.pt")) == ["fashion_mnist"]
    test = genframe.get_host().registry.get("dataset", "fashion_mnist")(split="test")
    assert evaluator(test.get_batch(torch.arange(len(test))))["fd"] < 1e-6
    anchors = evaluator.anchors(500)
    assert anchors["train"]["fd"] < anchors["noise"]["fd"]


def test_genframe_eval_reports_to_stdout_file_and_loggers(data_dir, tmp_path, mnist_evaluator):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "trainer.max_steps=2"], run_dir=run, quiet=True)
    result = CliRunner().invoke(cli, ["eval", str(run), "--n", "64", "--steps", "5"])
    assert result.exit_code == 0, result.output
    assert "ebm at step 2: 64 samples, 5 sampler steps" in result.output
    assert "train images (floor)" in result.output and "uniform noise" in result.output
    report = json.loads((run / "eval.json").read_text())
    assert report["n"] == 64 and report["step"] == 2 and set(report["samples"]) == RULER
    assert report["samples"]["fd"] > report["anchors"]["train"]["fd"]  # two training steps are not MNIST
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 2 and last["eval/fd"] == pytest.approx(report["samples"]["fd"])
    assert last["eval/n"] == 64  # the sample count rides along: fds of different n do not compare
    same = genframe.evaluate(run, n=64, steps=5, log=False)  # the Python API: same seed, same numbers
    assert same["samples"] == report["samples"]


def test_training_evaluates_every_epoch(data_dir, tmp_path, mnist_evaluator):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "data.limit=64", "trainer.max_steps=null", "trainer.epochs=2",
                                     "callbacks.evaluation.every_epochs=1", "callbacks.evaluation.n=32",
                                     "callbacks.evaluation.steps=5"], run_dir=run, quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fd" in r]
    assert [r["step"] for r in evals] == [4, 8]
    assert all(r["eval/fd"] > 0 and 0 <= r["eval/class_spread"] <= 1 and "eval/coverage" not in r and r["eval/n"] == 32 for r in evals)
    assert 0 < evals[0]["eval/train_minutes"] < evals[1]["eval/train_minutes"] < 1


def test_training_evaluates_every_n_steps(data_dir, tmp_path, mnist_evaluator):
    run = tmp_path / "run"
    genframe.train("ebm", overrides=[*TINY, "callbacks.evaluation.every_steps=2", "callbacks.evaluation.n=16",
                                     "callbacks.evaluation.steps=3"], run_dir=run, quiet=True)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/fd" in r] == [2, 4, 6]  # TINY runs 6 steps
