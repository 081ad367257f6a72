"""Sample-quality metrics in a classifier's feature space, the same for every model family (the ruler).

Against the reference (test) images' 128-d features:

- ``fd``: Fréchet distance between Gaussian fits of the samples' and the reference's features; 0 for
  identical distributions. Biased upwards at small n (a few n=1000 figures read higher than n=10000).
- ``kid``, ``kid_std``: kernel inception distance, the unbiased squared MMD with the cubic polynomial kernel
  ``(x.y / d + 1)^3`` (Binkowski et al. 2018), averaged over ``KID_SUBSETS`` subsets of at most
  ``KID_SUBSET`` samples and as many reference rows, with its standard deviation over the subsets. About 0
  (it may dip below) for samples from the reference's distribution.
- ``precision``, ``recall``: k-nearest-neighbour manifolds, k = 3 (Kynkaanniemi et al. 2019): the share of
  samples inside some reference row's k-NN ball (fidelity), and of reference rows inside some sample's ball
  (diversity). The reference rows are a seeded draw of as many rows as there are samples. These and the two
  below use the features scaled to unit length (cosine geometry): in the raw features the small classifier's
  cloud is so diffuse that uniform noise, bunched between real rows, scored precision 1.0 (MNIST, n=1000;
  0.15 on unit-length features, training images 0.89; docs/evaluation.md).
- ``density``, ``knn_coverage``: k = 5 (Naeem et al. 2020): how many reference balls hold each sample, over
  k (about 1 for matching distributions, above 1 for samples bunched where the data is dense), and the share of
  reference balls holding at least one sample. (Stored as ``knn_coverage``, never ``coverage``: that was the
  old name of ``class_spread``.)

From the classifier's predictions:

- ``confidence``: the mean top-class probability on the samples.
- ``confident``: the share of samples classified with probability > 0.9.
- ``class_spread``: entropy of the predicted-class histogram / log(num_classes); 1 = all classes equally.
  Called ``coverage`` before genframe 0.2: records with the old name are read with a deprecation notice
  (:func:`genframe.util.metric_names.renamed_metrics`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from genframe.using.classifier import FeatureClassifier

CONFIDENT = 0.9
KID_SUBSETS = 10
KID_SUBSET = 1000
PR_K = 3  # precision and recall's neighbours
DC_K = 5  # density and coverage's
CHUNK = 1000  # rows of a distance matrix at a time: 10000 x 10000 distances never held at once


@torch.no_grad()
def features_and_probs(classifier: FeatureClassifier, images: torch.Tensor, batch_size: int = 1000):
    """Features (N, 128) in float64 and class probabilities (N, C) for images in [-1, 1]."""
    feats, probs = [], []
    for start in range(0, images.shape[0], batch_size):
        features, logits = classifier(images[start : start + batch_size].float().cpu())
        feats.append(features.double())
        probs.append(logits.softmax(dim=1))
    return torch.cat(feats), torch.cat(probs)


def gaussian(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of feature rows."""
    mean = features.mean(0)
    centred = features - mean
    return mean, centred.T @ centred / max(features.shape[0] - 1, 1)


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), with the trace term from a symmetric
    eigen-decomposition (sqrt(S1) S2 sqrt(S1) has the same eigenvalues as S1 S2), so no scipy."""
    root1 = _sqrt_psd(sigma1)
    cross = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * cross
    return max(float(value), 0.0)


@dataclass
class Reference:
    """The reference images' features, their Gaussian fit, and the k-NN radii of seeded subsets (by size)."""

    features: torch.Tensor  # (N, d) float64
    gaussian: tuple[torch.Tensor, torch.Tensor] = field(init=False)
    _subsets: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.gaussian = gaussian(self.features)

    def subset(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` reference rows (a seeded draw, all of them when ``n`` is not smaller) at unit length, as float32,
        with their ``PR_K``-th and ``DC_K``-th nearest-neighbour distances among themselves."""
        n = min(n, len(self.features))
        if n not in self._subsets:
            index = torch.randperm(len(self.features), generator=torch.Generator().manual_seed(0))[:n]
            rows = unit_length(self.features[index])
            radii = kth_neighbour_distances(rows, (PR_K, DC_K))
            self._subsets[n] = (rows, radii[PR_K], radii[DC_K])
        return self._subsets[n]


def unit_length(features: torch.Tensor) -> torch.Tensor:
    """Feature rows scaled to length 1, as float32: the geometry the k-NN metrics are measured in."""
    return torch.nn.functional.normalize(features.double(), dim=1).float()


def kth_neighbour_distances(rows: torch.Tensor, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Each row's distance to its k-th nearest other row, for each k of ``ks`` (a row is not its own neighbour)."""
    top = min(max(ks) + 1, len(rows))
    nearest = torch.cat([torch.cdist(rows[i:i + CHUNK], rows).topk(top, dim=1, largest=False).values
                         for i in range(0, len(rows), CHUNK)])
    return {k: nearest[:, min(k, top - 1)] for k in ks}  # column 0 is the row itself, at distance 0


def kid(samples: torch.Tensor, reference: torch.Tensor, subsets: int = KID_SUBSETS,
        size: int = KID_SUBSET) -> tuple[float, float]:
    """Mean and standard deviation over ``subsets`` seeded subsets of the unbiased squared MMD between
    ``samples`` and ``reference`` features with the kernel ``(x.y / d + 1)^3``."""
    m = min(size, len(samples), len(reference))
    if m < 2:
        return math.nan, math.nan
    generator, d = torch.Generator().manual_seed(0), samples.shape[1]
    values = []
    for _ in range(subsets):
        x = samples[torch.randperm(len(samples), generator=generator)[:m]].double()
        y = reference[torch.randperm(len(reference), generator=generator)[:m]].double()
        kxx, kyy, kxy = (((a @ b.T) / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        values.append(float(within - 2 * kxy.mean()))
    spread = torch.tensor(values, dtype=torch.float64)
    return float(spread.mean()), float(spread.std()) if len(values) > 1 else 0.0


def manifold_metrics(samples: torch.Tensor, real: torch.Tensor, real_pr: torch.Tensor,
                     real_dc: torch.Tensor) -> dict[str, float]:
    """Precision and recall (k = ``PR_K``) and density and coverage (k = ``DC_K``) of ``samples`` against the
    ``real`` rows with their neighbour radii, in one chunked pass over the sample-to-real distances."""
    fake = samples.float()
    fake_pr = kth_neighbour_distances(fake, (PR_K,))[PR_K]
    inside_some_ball, balls_holding, nearest_to_real = [], [], torch.full((len(real),), math.inf)
    recalled = torch.zeros(len(real), dtype=torch.bool)
    for i in range(0, len(fake), CHUNK):
        distances = torch.cdist(fake[i:i + CHUNK], real)  # (chunk, N)
        inside_some_ball.append((distances <= real_pr).any(dim=1))
        balls_holding.append((distances <= real_dc).sum(dim=1))
        nearest_to_real = torch.minimum(nearest_to_real, distances.min(dim=0).values)
        recalled |= (distances <= fake_pr[i:i + CHUNK, None]).any(dim=0)
    return {
        "precision": float(torch.cat(inside_some_ball).double().mean()),
        "recall": float(recalled.double().mean()),
        "density": float(torch.cat(balls_holding).double().mean() / DC_K),
        "knn_coverage": float((nearest_to_real <= real_dc).double().mean()),
    }


def quality(classifier: FeatureClassifier, images: torch.Tensor, reference: Reference) -> dict[str, float]:
    """Every metric of the ruler for ``images`` against ``reference`` (see the module's description)."""
    features, probs = features_and_probs(classifier, images)
    top = probs.max(dim=1).values
    histogram = torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1]).double() / probs.shape[0]
    entropy = -(histogram[histogram > 0] * histogram[histogram > 0].log()).sum()
    kid_mean, kid_std = kid(features, reference.features)
    return {
        "fd": frechet_distance(*gaussian(features), *reference.gaussian),
        "kid": kid_mean,
        "kid_std": kid_std,
        **manifold_metrics(unit_length(features), *reference.subset(len(features))),
        "confidence": float(top.mean()),
        "confident": float((top > CONFIDENT).double().mean()),
        "class_spread": float(entropy) / math.log(probs.shape[1]),
    }
