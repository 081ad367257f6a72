"""Sample-quality metrics in a classifier's feature space, the same for every model family.

- ``fd``: Fréchet distance between Gaussian fits of the classifier's 128-d features of the samples
  and of the reference (test) images; 0 for identical distributions.
- ``confidence``: the classifier's mean top-class probability on the samples.
- ``confident``: the share of samples classified with probability > 0.9.
- ``coverage``: entropy of the predicted-class histogram / log(num_classes); 1 = all classes equally.
"""

from __future__ import annotations

import math

import torch

from genframe.using.classifier import FeatureClassifier

CONFIDENT = 0.9


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


def quality(classifier: FeatureClassifier, images: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """All four metrics of ``images`` against the reference Gaussian ``(mean, cov)``."""
    features, probs = features_and_probs(classifier, images)
    top = probs.max(dim=1).values
    histogram = torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1]).double() / probs.shape[0]
    entropy = -(histogram[histogram > 0] * histogram[histogram > 0].log()).sum()
    return {
        "fd": frechet_distance(*gaussian(features), *reference),
        "confidence": float(top.mean()),
        "confident": float((top > CONFIDENT).double().mean()),
        "coverage": float(entropy) / math.log(probs.shape[1]),
    }
