"""The ODE sampler: noise at t = 0 carried along the learnt velocity to data at t = 1, with a fixed-step or an
adaptive solver (the core's ``genframe.integrate_fixed`` and ``integrate_adaptive``); ``refine`` completes images
(known pixels held on the path at every step) and cleans them (fresh noise mixed in as the path would have it
at ``denoise_from``, then the rest of the path integrated: an SDEdit-style restart).

``generate_steps`` is the number of function evaluations (NFE) a sample costs, as the recipe's
``sampler.nfe`` sets it; each ``SampleOutput.nfe`` (and ``last_nfe``, for ``refine``) is what the call used (the
adaptive solver's own count).
"""

from __future__ import annotations

import torch

from genframe import (
    ADAPTIVE_EVALS_PER_STEP,
    SOLVER_EVALS_PER_STEP,
    SampleOutput,
    Sampler,
    integrate_adaptive,
    integrate_fixed,
    solver_steps,
)


class ODESampler(Sampler):
    completes_from_noise = True  # inpainting runs the whole path from noise, holding the known pixels on it

    def __init__(self, shape: tuple[int, ...], method: str = "midpoint", nfe: int = 20, rtol: float = 1e-3,
                 atol: float = 1e-3, denoise_from: float = 0.6, likelihood_steps: int = 20) -> None:
        self.shape, self.method, self.rtol, self.atol, self.denoise_from = tuple(shape), method, rtol, atol, denoise_from
        self.likelihood_steps = likelihood_steps  # genframe score: steps of the log-likelihood ODE
        self.generate_steps = nfe
        self.denoise_steps = max(1, round(nfe * (1 - denoise_from)))
        self.last_nfe = 0

    @classmethod
    def from_config(cls, config, shape: tuple[int, ...]) -> ODESampler:
        return cls(shape, config.method, config.nfe, config.rtol, config.atol, config.denoise_from,
                   config.likelihood_steps)

    def init_state(self, n, device="cpu", generator=None):
        return torch.randn((n, *self.shape), generator=generator, device=device)

    @staticmethod
    def velocity(model: torch.nn.Module):
        def f(x: torch.Tensor, t: float) -> torch.Tensor:
            return model(x, torch.full((len(x),), t, device=x.device, dtype=x.dtype))
        return f

    def _solve(self, model, x, t0, nfe, keep_every=None, after_step=None):
        with torch.no_grad():
            if self.method == "adaptive":
                if after_step is not None:  # holding pixels between steps needs steps of its own choosing
                    method, steps = "heun", solver_steps("heun", nfe)
                    return integrate_fixed(self.velocity(model), x, t0, 1.0, method, steps, keep_every, after_step)
                return integrate_adaptive(self.velocity(model), x, t0, 1.0, self.rtol, self.atol,
                                          max_nfe=max(50 * nfe, 1000), keep_every=keep_every)
            steps = solver_steps(self.method, nfe)
            return integrate_fixed(self.velocity(model), x, t0, 1.0, self.method, steps, keep_every, after_step)

    def sample(self, model, init, steps=None, keep_every=None, generator=None):
        """From noise ``init`` to samples in ``steps`` evaluations (default ``generate_steps``); the chain keeps a
        state every ``keep_every`` evaluations (the core counts a GIF's frames in the sampler's steps, which here
        are evaluations). The output's ``nfe``: what this call used."""
        per_step = ADAPTIVE_EVALS_PER_STEP if self.method == "adaptive" else SOLVER_EVALS_PER_STEP[self.method]
        every = None if not keep_every else max(1, keep_every // per_step)
        x, kept, self.last_nfe = self._solve(model, init, 0.0, steps or self.generate_steps, every)
        return SampleOutput(x.clamp(-1, 1), [state.clamp(-1, 1) for state in kept] if keep_every else [], self.last_nfe)

    def refine(self, model, images, known=None, steps=None, generator=None):
        noise = torch.randn(images.shape, generator=generator, device=images.device)
        if known is None:  # cleaning: restart the path at denoise_from, (1 - t0) z + t0 x, and integrate on
            t0 = self.denoise_from
            start = (1 - t0) * noise + t0 * images
            x, _, self.last_nfe = self._solve(model, start, t0, steps or self.denoise_steps)
            return x.clamp(-1, 1)
        known = known.expand_as(images)

        def hold(x: torch.Tensor, t: float) -> torch.Tensor:  # the known pixels where the path puts them at t
            return torch.where(known, (1 - t) * noise + t * images, x)

        x, _, self.last_nfe = self._solve(model, hold(noise, 0.0), 0.0, steps or self.generate_steps, after_step=hold)
        return torch.where(known, images, x).clamp(-1, 1)
