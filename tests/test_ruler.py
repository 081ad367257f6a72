"""The ruler, version 2: KID, precision/recall and density/coverage, each checked against a direct computation
on small arrays (loops over pairs, no chunking) and against the anchors a reader knows: real images versus real
images, and real versus noise. ``coverage`` of genframe 0.1 is ``class_spread`` now, read under its old name
with a deprecation notice."""

from __future__ import annotations

import itertools
import math
import os

import pytest
import torch

from genframe.config.sections import DataConfig
from genframe.plugins.host import get_host
from genframe.using import metrics
from genframe.using.evaluate import Evaluator
from genframe.util.deprecation import GenframeDeprecationWarning
from genframe.util.metric_names import renamed_metrics


def direct_mmd2(x: torch.Tensor, y: torch.Tensor) -> float:
    """The unbiased squared MMD with the cubic polynomial kernel, summed pair by pair."""
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def direct_manifold(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Precision, recall, density and coverage from their definitions, one pair at a time."""
    def dist(a, b):
        return float((a - b).norm())

    def kth(rows, i, k):  # distance from row i to its k-th nearest other row
        return sorted(dist(rows[i], rows[j]) for j in range(len(rows)) if j != i)[k - 1]

    real_pr = [kth(real, i, metrics.PR_K) for i in range(len(real))]
    real_dc = [kth(real, i, metrics.DC_K) for i in range(len(real))]
    fake_pr = [kth(fake, j, metrics.PR_K) for j in range(len(fake))]
    precision = sum(any(dist(f, r) <= real_pr[i] for i, r in enumerate(real)) for f in fake) / len(fake)
    recall = sum(any(dist(r, f) <= fake_pr[j] for j, f in enumerate(fake)) for r in real) / len(real)
    density = sum(dist(f, r) <= real_dc[i] for f in fake for i, r in enumerate(real)) / (metrics.DC_K * len(fake))
    coverage = sum(min(dist(r, f) for f in fake) <= real_dc[i] for i, r in enumerate(real)) / len(real)
    return {"precision": precision, "recall": recall, "density": density, "knn_coverage": coverage}


def test_kid_is_the_unbiased_mmd_of_its_definition():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(12, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(12, 5, generator=generator, dtype=torch.float64) + 0.5
    mean, spread = metrics.kid(x, y, subsets=3, size=12)  # every row in each subset: the subsets agree
    assert mean == pytest.approx(direct_mmd2(x, y), rel=1e-9) and spread == pytest.approx(0.0, abs=1e-9)
    mean, spread = metrics.kid(x, y, subsets=4, size=6)
    assert spread > 0 and math.isfinite(mean)


def test_precision_recall_density_and_coverage_follow_their_definitions(monkeypatch):
    monkeypatch.setattr(metrics, "CHUNK", 7)  # the chunked passes must add up to the whole
    generator = torch.Generator().manual_seed(5)
    real = torch.randn(30, 3, generator=generator)
    fake = torch.randn(23, 3, generator=generator) + 1.5
    radii = metrics.kth_neighbour_distances(real, (metrics.PR_K, metrics.DC_K))
    got = metrics.manifold_metrics(fake, real, radii[metrics.PR_K], radii[metrics.DC_K])
    expected = direct_manifold(fake, real)
    assert got == pytest.approx(expected, rel=1e-6)
    assert all(0 < got[name] < 1 for name in got)  # a case where every count is partial


@pytest.fixture(scope="module")
def mnist_evaluator():
    if not os.path.isdir(os.path.join(os.environ.get("GENFRAME_DATA_DIR", ""), "mnist")):
        pytest.skip("MNIST not found; set GENFRAME_DATA_DIR")
    return Evaluator(get_host().registry, DataConfig(name="mnist"))


def test_real_images_score_as_real_and_noise_as_nothing(mnist_evaluator):
    anchors = mnist_evaluator.anchors(1000)  # 1000 training images, and uniform noise, against the test set
    real, noise = anchors["train"], anchors["noise"]
    assert set(real) == {"fd", "kid", "kid_std", "precision", "recall", "density", "knn_coverage", "confidence",
                         "confident", "class_spread"} and "coverage" not in real
    # KID is unbiased: real images read 0 within their spread over subsets; noise, hundreds of spreads above
    assert abs(real["kid"]) < 2 * real["kid_std"] and noise["kid"] > 50 * real["kid_std"]
    assert real["precision"] > 0.8 and real["recall"] > 0.8 and 0.8 < real["density"] < 1.2
    assert real["knn_coverage"] > 0.9 and real["class_spread"] > 0.99
    assert noise["precision"] < 0.3 and noise["recall"] < 0.2 and noise["density"] < 0.1 and noise["knn_coverage"] < 0.1


def test_the_old_metric_name_is_read_as_class_spread_with_a_notice():
    old = {"step": 3, "eval/fd": 4.0, "eval/coverage": 0.9, "eval/trained/coverage": 0.8, "eval/knn_coverage": 0.5,
           "train/coverage": 0.3}  # a plugin's own figure keeps its name
    with pytest.warns(GenframeDeprecationWarning, match="'eval/coverage' .* it is 'class_spread' now"):
        new = renamed_metrics(old, "metrics.jsonl")
    assert new == {"step": 3, "eval/fd": 4.0, "eval/class_spread": 0.9, "eval/trained/class_spread": 0.8,
                   "eval/knn_coverage": 0.5, "train/coverage": 0.3}
    assert renamed_metrics(new) is new  # nothing old: as it is
