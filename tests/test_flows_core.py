"""The core's flow-matching pieces (genframe/flows), which any family may share: the ODE solvers against exact
solutions, the straight path and its time draws, optimal-transport pairing, and the log-likelihood of a velocity
model against cases with a closed form."""

from __future__ import annotations

import math

import pytest
import torch

import genframe


def test_the_straight_path_runs_from_noise_to_data_at_the_constant_velocity():
    generator = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(3, 1, 2, 2, generator=generator), torch.randn(3, 1, 2, 2, generator=generator)
    t = torch.tensor([0.0, 0.25, 1.0])
    xt, velocity = genframe.straight_path(x0, x1, t)
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[2], x1[2])
    assert torch.allclose(xt[1], 0.75 * x0[1] + 0.25 * x1[1])
    assert torch.equal(velocity, x1 - x0)
    noisy, _ = genframe.straight_path(x0, x1, t, sigma_min=0.1, generator=generator)
    assert 0 < (noisy - xt).abs().max() < 1  # sigma_min widens the path


@pytest.mark.parametrize("how", ["uniform", "logit_normal"])
def test_path_times_are_drawn_in_the_open_interval_seeded(how):
    draw = genframe.draw_path_times(20000, how, torch.Generator().manual_seed(1), "cpu")
    assert draw.min() > 0 and draw.max() < 1 and abs(float(draw.mean()) - 0.5) < 0.01
    assert torch.equal(draw, genframe.draw_path_times(20000, how, torch.Generator().manual_seed(1), "cpu"))
    middle = float(((draw > 0.25) & (draw < 0.75)).float().mean())
    assert abs(middle - (0.5 if how == "uniform" else 0.728)) < 0.02  # logit-normal trains more mid-path
    with pytest.raises(ValueError, match="unknown time sampling 'beta'"):
        genframe.draw_path_times(2, "beta", torch.Generator(), "cpu")


def test_solver_steps_fit_within_the_evaluations():
    assert [genframe.solver_steps(m, 20) for m in ("euler", "midpoint", "heun")] == [20, 10, 10]
    assert genframe.solver_steps("heun", 1) == 1 and genframe.SOLVER_EVALS_PER_STEP["midpoint"] == 2


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("midpoint", 2), ("heun", 2)])
def test_fixed_step_solvers_reach_the_exact_end_with_their_order(method, order):
    x0 = torch.ones(3)
    errors = [abs(float(genframe.integrate_fixed(lambda x, t: -x, x0, 0.0, 1.0, method, steps)[0][0]) - math.exp(-1))
              for steps in (10, 20)]
    assert errors[0] < 0.05 and errors[1] < errors[0] / (2 ** order) * 1.3  # halving the step cuts it 2^order
    _, kept, nfe = genframe.integrate_fixed(lambda x, t: -x, x0, 0.0, 1.0, method, 10, keep_every=5)
    assert nfe == 10 * (1 if method == "euler" else 2) and len(kept) == 3


def test_the_adaptive_solver_meets_its_tolerance_and_counts_its_evaluations():
    x0 = torch.ones(4)
    end, _, nfe = genframe.integrate_adaptive(lambda x, t: -x * (1 + 3 * t), x0, 0.0, 1.0, rtol=1e-6, atol=1e-6)
    assert abs(float(end[0]) - math.exp(-2.5)) < 1e-5
    loose = genframe.integrate_adaptive(lambda x, t: -x * (1 + 3 * t), x0, 0.0, 1.0, rtol=1e-2, atol=1e-2)[2]
    assert loose < nfe and (nfe - 1) % 6 == 0  # one first evaluation, then six per try
    # Tolerances the budget cannot meet are the user's to loosen: a config error (one Error: line), not a crash.
    with pytest.raises(genframe.ConfigError, match="loosen sampler.rtol/atol"):
        genframe.integrate_adaptive(lambda x, t: -x * (1 + 3 * t), x0, 0.0, 1.0, rtol=1e-12, atol=1e-12, max_nfe=50)


def test_ot_pairing_shortens_the_paths_and_the_plan_has_uniform_marginals():
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(64, 6, generator=generator) + 3
    noise = torch.randn(64, 6, generator=generator)
    plan = genframe.sinkhorn_plan(torch.cdist(noise, data).square() / 50, epsilon=0.05)
    assert torch.allclose(plan.sum(0), torch.full((64,), 1 / 64), atol=1e-4)
    assert torch.allclose(plan.sum(1), torch.full((64,), 1 / 64), atol=1e-3)  # rows: not exact by construction
    paired = genframe.ot_pairing(noise, data, generator)
    assert (paired - data).square().sum() < 0.9 * (noise - data).square().sum()


def test_log_likelihood_of_a_scaled_gaussian_matches_its_closed_form():
    scale = 2.0

    class Scale(torch.nn.Module):  # x_t = (1 + (s - 1) t) x0: data ~ N(0, s^2 I); a diagonal Jacobian, which one
        def forward(self, x, t):  # Rademacher probe measures exactly, so only the steps' error is left
            return (scale - 1) * x / (1 + (scale - 1) * t.view(-1, 1, 1, 1))

    images = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(3)) * scale
    got = genframe.flow_log_likelihood(Scale(), images, steps=400, generator=torch.Generator().manual_seed(0))
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    exact = (-0.5 * (images / scale).flatten(1).square().sum(1) - 16 * (half_log_2pi + math.log(scale))) / 16
    assert torch.allclose(got, exact, atol=2e-3)
    wrong_sign = (-0.5 * (images / scale).flatten(1).square().sum(1) - 16 * (half_log_2pi - math.log(scale))) / 16
    assert not torch.allclose(got, wrong_sign, atol=0.5)  # the divergence counted the other way is far off


def test_log_likelihood_of_a_shifted_gaussian_matches_its_closed_form():
    shift = 0.7

    class Shift(torch.nn.Module):  # data = noise + shift: a constant velocity, zero divergence
        def forward(self, x, t):
            return torch.full_like(x, shift)

    images = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(2)) + shift
    got = genframe.flow_log_likelihood(Shift(), images, steps=4, generator=torch.Generator().manual_seed(0))
    exact = -0.5 * ((images - shift).flatten(1).square().sum(1) + 16 * math.log(2 * math.pi)) / 16
    assert torch.allclose(got, exact, atol=1e-5)
