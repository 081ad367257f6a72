"""The probability path that flow matching trains on, for any family that regresses a velocity (or an energy's
gradient) on it: x_t = (1 - t) x0 + t x1 from noise x0 to data x1, with velocity x1 - x0; how t is drawn; and
how noise and data are paired in a batch (independently, or by a mini-batch optimal-transport plan, which
straightens the paths a sampler follows)."""

from __future__ import annotations

import math

import torch


def draw_path_times(n: int, how: str, generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    """``n`` times in (0, 1): ``uniform``, or ``logit_normal`` (the sigmoid of a standard normal: more mid-path)."""
    if how == "uniform":
        return torch.rand((n,), generator=generator, device=device)
    if how == "logit_normal":
        return torch.sigmoid(torch.randn((n,), generator=generator, device=device))
    raise ValueError(f"unknown time sampling {how!r}; use uniform or logit_normal")


def sinkhorn_plan(cost: torch.Tensor, epsilon: float, iterations: int = 50) -> torch.Tensor:
    """The entropic optimal-transport plan between two uniform batches for ``cost`` (n, n), in log space."""
    n = cost.shape[0]
    log_k = -cost / epsilon
    log_u = torch.zeros(n, device=cost.device, dtype=cost.dtype)
    log_v = torch.zeros(n, device=cost.device, dtype=cost.dtype)
    log_marginal = -math.log(n)
    for _ in range(iterations):
        log_u = log_marginal - torch.logsumexp(log_k + log_v[None, :], dim=1)
        log_v = log_marginal - torch.logsumexp(log_k + log_u[:, None], dim=0)
    return (log_u[:, None] + log_k + log_v[None, :]).exp()


def ot_pairing(noise: torch.Tensor, data: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``noise`` reordered so that row i goes with ``data`` row i as a mini-batch OT plan pairs them: for each
    data row a noise row drawn from the plan's column (Tong et al. 2023)."""
    with torch.no_grad():
        cost = torch.cdist(noise.flatten(1).double(), data.flatten(1).double()).square()
        plan = sinkhorn_plan(cost / cost.mean(), epsilon=0.05)
        columns = (plan / plan.sum(dim=0, keepdim=True)).T  # for each data row: where its noise comes from
        choice = torch.multinomial(columns.float(), 1, generator=generator).squeeze(1)
    return noise[choice]


def straight_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, sigma_min: float = 0.0,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, target velocity) on the straight path at times ``t`` (N,)."""
    tt = t.view(-1, *([1] * (x1.dim() - 1)))
    xt = (1 - tt) * x0 + tt * x1
    if sigma_min > 0:
        xt = xt + sigma_min * torch.randn(xt.shape, generator=generator, device=xt.device)
    return xt, x1 - x0
