"""How well a score tells two sets apart: AUROC, AUPR and the false-positive rate at 95% true positives.

The in-set is the positive class and a higher score means "more like the in-set" (as every genframe
score does). Ties are shared fairly: AUROC counts a tie as half a win, AUPR ranks tied scores together.
"""

from __future__ import annotations

import math

import torch


def auroc(inside: torch.Tensor, outside: torch.Tensor) -> float:
    """The chance that a random in-set score is above a random out-set score (ties count half)."""
    scores = torch.cat([inside, outside]).double()
    ranks = _midranks(scores)
    n_in, n_out = len(inside), len(outside)
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


def aupr(inside: torch.Tensor, outside: torch.Tensor) -> float:
    """Average precision of finding the in-set by its score (the area under the precision-recall curve,
    in-set positive); tied scores enter the ranking together."""
    scores = torch.cat([inside, outside]).double()
    positive = torch.cat([torch.ones(len(inside)), torch.zeros(len(outside))]).double()
    order = torch.argsort(scores, descending=True, stable=True)
    scores, positive = scores[order], positive[order]
    # the last row of each run of tied scores: where a threshold can fall
    last = torch.ones(len(scores), dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]
    true_positives = torch.cumsum(positive, 0)[last]
    taken = (torch.nonzero(last).flatten() + 1).double()
    precision = true_positives / taken
    recall_steps = torch.diff(true_positives, prepend=torch.zeros(1, dtype=torch.float64)) / len(inside)
    return float((precision * recall_steps).sum())


def fpr_at_tpr(inside: torch.Tensor, outside: torch.Tensor, tpr: float = 0.95) -> float:
    """The share of the out-set scored at or above the threshold that keeps ``tpr`` of the in-set."""
    kept = max(1, math.ceil(tpr * len(inside) - 1e-9))  # the highest threshold keeping at least that share
    threshold = torch.sort(inside.double(), descending=True).values[kept - 1]
    return float((outside.double() >= threshold).double().mean())


def separation(inside: torch.Tensor, outside: torch.Tensor) -> dict[str, float]:
    return {"auroc": auroc(inside, outside), "aupr": aupr(inside, outside), "fpr95": fpr_at_tpr(inside, outside)}


def _midranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n of ``values``, tied values sharing the mean of their ranks."""
    order = torch.argsort(values, stable=True)
    ordered = values[order]
    starts = torch.ones(len(values), dtype=torch.bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    group = torch.cumsum(starts, 0) - 1
    positions = torch.arange(1, len(values) + 1, dtype=torch.float64)
    sums = torch.zeros(int(group[-1]) + 1, dtype=torch.float64).index_add_(0, group, positions)
    counts = torch.zeros_like(sums).index_add_(0, group, torch.ones_like(positions))
    ranks = torch.empty_like(positions)
    ranks[order] = (sums / counts)[group]
    return ranks
