"""ODE solvers for dx/dt = f(x, t), for any family that samples along a flow: fixed-step Euler, midpoint and
Heun with a set number of function evaluations (NFE), and an adaptive Dormand-Prince 5(4) that keeps its error
within tolerances and reports the NFE it used. Each returns the end state, the states it was asked to keep,
and the NFE.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genframe.contracts.errors import ConfigError

Field = Callable[[torch.Tensor, float], torch.Tensor]
SOLVER_EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2}
# Dormand-Prince 5(4) evaluates six new stages a step, accepted or not (the seventh is the next step's first)
ADAPTIVE_EVALS_PER_STEP = 6


def solver_steps(method: str, nfe: int) -> int:
    """The steps a fixed-step ``method`` takes within ``nfe`` evaluations (at least one)."""
    return max(1, nfe // SOLVER_EVALS_PER_STEP[method])


def integrate_fixed(f: Field, x: torch.Tensor, t0: float, t1: float, method: str, steps: int,
                    keep_every: int | None = None,
                    after_step: Callable[[torch.Tensor, float], torch.Tensor] | None = None,
                    ) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """``steps`` equal steps of ``method`` from ``t0`` to ``t1``; ``after_step(x, t)`` may change each new state
    (e.g. hold known pixels on the path)."""
    h = (t1 - t0) / steps
    kept, nfe = [x], 0
    for k in range(steps):
        t = t0 + k * h
        if method == "euler":
            x = x + h * f(x, t)
            nfe += 1
        elif method == "midpoint":
            x = x + h * f(x + 0.5 * h * f(x, t), t + 0.5 * h)
            nfe += 2
        elif method == "heun":
            slope = f(x, t)
            guess = x + h * slope
            x = x + 0.5 * h * (slope + f(guess, t + h))
            nfe += 2
        else:
            raise ValueError(f"unknown fixed-step method {method!r}; methods: {', '.join(SOLVER_EVALS_PER_STEP)}")
        if after_step is not None:
            x = after_step(x, t + h)
        if keep_every and (k + 1) % keep_every == 0:
            kept.append(x)
    return x, kept, nfe


# Dormand-Prince 5(4) tableau
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = ((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def integrate_adaptive(f: Field, x: torch.Tensor, t0: float, t1: float, rtol: float, atol: float,
                       max_nfe: int = 10000, keep_every: int | None = None,
                       ) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """Dormand-Prince 5(4) from ``t0`` to ``t1``: each step's error (RMS over the batch, scaled by the
    tolerances) at most 1, the step size adapted; stops with an error past ``max_nfe`` evaluations."""
    t, h = t0, (t1 - t0) / 10
    kept, nfe, accepted = [x], 0, 0
    slope = f(x, t)
    nfe += 1
    while t < t1 - 1e-9:
        h = min(h, t1 - t)
        stages = [slope]
        for i in range(1, 7):
            state = x + h * sum(a * k for a, k in zip(_A[i], stages))
            stages.append(f(state, t + _C[i] * h))
        nfe += ADAPTIVE_EVALS_PER_STEP
        new = x + h * sum(b * k for b, k in zip(_B5, stages))
        error = h * sum((b5 - b4) * k for b5, b4, k in zip(_B5, _B4, stages))
        scale = atol + rtol * torch.maximum(x.abs(), new.abs())
        norm = float((error / scale).square().mean().sqrt())
        if norm <= 1.0:
            t, x, slope = t + h, new, stages[6]  # first same as last: the next step's first stage
            accepted += 1
            if keep_every and accepted % keep_every == 0:
                kept.append(x)
        if nfe > max_nfe:
            raise ConfigError(f"the adaptive solver used {nfe} evaluations without reaching t={t1} (at t={t:.3f}); "
                              "loosen sampler.rtol/atol or use a fixed-step method")
        h = h * min(5.0, max(0.2, 0.9 * (norm + 1e-12) ** -0.2))
    return x, kept, nfe
