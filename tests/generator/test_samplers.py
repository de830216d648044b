"""Sampling loops on toy data with known answers.

Two data distributions have closed-form denoisers: a point mass at `c` (denoised = c; the probability-flow ODE
solution is x(sigma) = c + (x_T - c) * sigma / sigma_T) and a Gaussian N(mu, s2) (denoised =
(s2 * x + sigma**2 * mu) / (s2 + sigma**2); ODE solution mu + (x_T - mu) * sqrt(s2 + sigma**2) / sqrt(s2 + sigma_T**2),
and every sampler that solves the reverse SDE ends with samples of N(mu, s2)). Expected values below are worked
out by hand from the published update rules in plain Python floats, never by calling the implementation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modeldex.errors import GenerationError
from modeldex.generator.rng import A1111Noise, randn
from modeldex.generator.samplers import (
    a1111_sigmas,
    brownian_noise_sampler,
    initial_latent,
    sample,
    schedule_sigmas,
)

MU, S2 = 0.3, 0.5
SIGMAS = [3.0, 1.5, 0.5, 0.0]
X_T = 2.0
NOISE = 0.7


def gaussian(x: float, sigma: float) -> float:
    return (S2 * x + sigma**2 * MU) / (S2 + sigma**2)


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    assert sigma.shape == (x.shape[0],)
    sigma = sigma.view(-1, *([1] * (x.ndim - 1)))
    return (S2 * x + sigma**2 * MU) / (S2 + sigma**2)


def run(sampler: str, sigmas=SIGMAS, x: float = X_T, **kwargs) -> float:
    result = sample(
        sampler,
        gaussian_denoiser,
        torch.tensor([[x]], dtype=torch.float32),
        torch.tensor(sigmas, dtype=torch.float32),
        **kwargs,
    )
    assert result.shape == (1, 1)
    return float(result)


def constant_noise(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    return torch.full((1, 1), NOISE)


def ancestral(sigma: float, sigma_next: float) -> tuple[float, float]:
    up = math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)
    return math.sqrt(sigma_next**2 - up**2), up


def d(x: float, sigma: float) -> float:
    return (x - gaussian(x, sigma)) / sigma


# --- deterministic samplers, step by step -------------------------------------------------------------------


def test_euler_by_hand():
    x = X_T
    for sigma, sigma_next in zip(SIGMAS, SIGMAS[1:], strict=False):
        x = x + (sigma_next - sigma) * d(x, sigma)
    assert run("Euler") == pytest.approx(x, rel=1e-5)


def test_heun_by_hand():
    x = X_T
    for sigma, sigma_next in zip(SIGMAS, SIGMAS[1:], strict=False):
        slope = d(x, sigma)
        if sigma_next == 0:
            x = x - sigma * slope
            continue
        predicted = x + (sigma_next - sigma) * slope
        x = x + (sigma_next - sigma) * (slope + d(predicted, sigma_next)) / 2
    assert run("Heun") == pytest.approx(x, rel=1e-5)


def test_dpm2_uses_the_geometric_midpoint():
    x = X_T
    for sigma, sigma_next in zip(SIGMAS, SIGMAS[1:], strict=False):
        if sigma_next == 0:
            x = x - sigma * d(x, sigma)
            continue
        mid = math.sqrt(sigma * sigma_next)
        x_mid = x + (mid - sigma) * d(x, sigma)
        x = x + (sigma_next - sigma) * d(x_mid, mid)
    assert run("DPM2", SIGMAS) == pytest.approx(x, rel=1e-5)


def test_lms_second_step_is_adams_bashforth_on_the_sigma_grid():
    t0, t1, t2 = SIGMAS[:3]
    x1 = X_T + (t1 - t0) * d(X_T, t0)
    # integrate the line through (t0, d0), (t1, d1) over [t1, t2]
    c1 = ((t2 - t0) ** 2 - (t1 - t0) ** 2) / (2 * (t1 - t0))
    c0 = (t2 - t1) ** 2 / (2 * (t0 - t1))
    x2 = x1 + c1 * d(x1, t1) + c0 * d(X_T, t0)
    assert run("LMS", SIGMAS[:3]) == pytest.approx(x2, rel=1e-5)


def test_dpmpp_2m_by_hand():
    def exp_step(x: float, sigma: float, sigma_next: float, denoised: float) -> float:
        ratio = sigma_next / sigma
        return ratio * x + (1 - ratio) * denoised

    sigmas = [3.0, 1.5, 0.5, 0.2, 0.0]
    x, old = X_T, None
    for i, (sigma, sigma_next) in enumerate(zip(sigmas, sigmas[1:], strict=False)):
        denoised = gaussian(x, sigma)
        if old is None or sigma_next == 0:
            estimate = denoised
        else:
            r = math.log(sigmas[i - 1] / sigma) / math.log(sigma / sigma_next)
            estimate = (1 + 1 / (2 * r)) * denoised - old / (2 * r)
        x, old = exp_step(x, sigma, sigma_next, estimate), denoised
    assert run("DPM++ 2M", sigmas) == pytest.approx(x, rel=1e-5)
    assert run("DPM++ 2M Karras", sigmas) == run("DPM++ 2M", sigmas)


# --- ancestral and SDE samplers with a fixed noise -----------------------------------------------------------


def test_euler_ancestral_by_hand():
    x = X_T
    for sigma, sigma_next in zip(SIGMAS, SIGMAS[1:], strict=False):
        down, up = ancestral(sigma, sigma_next)
        x = x + (down - sigma) * d(x, sigma)
        if sigma_next > 0:
            x += up * NOISE
    assert run("Euler a", noise_sampler=constant_noise) == pytest.approx(x, rel=1e-5)


def test_euler_ancestral_eta_zero_is_euler():
    assert run("Euler a", eta=0.0, noise_sampler=constant_noise) == pytest.approx(run("Euler"), rel=1e-6)


def test_dpm2_ancestral_by_hand():
    x = X_T
    for sigma, sigma_next in zip(SIGMAS, SIGMAS[1:], strict=False):
        down, up = ancestral(sigma, sigma_next)
        if down == 0:
            x = x - sigma * d(x, sigma)
            continue
        mid = math.sqrt(sigma * down)
        x_mid = x + (mid - sigma) * d(x, sigma)
        x = x + (down - sigma) * d(x_mid, mid) + up * NOISE
    assert run("DPM2 a", noise_sampler=constant_noise) == pytest.approx(x, rel=1e-5)


def test_dpmpp_2s_ancestral_by_hand():
    x = X_T
    for sigma, sigma_next in zip(SIGMAS, SIGMAS[1:], strict=False):
        down, up = ancestral(sigma, sigma_next)
        denoised = gaussian(x, sigma)
        if down == 0:
            x = denoised
        else:
            mid = math.sqrt(sigma * down)
            x_mid = (mid / sigma) * x + (1 - mid / sigma) * denoised
            x = (down / sigma) * x + (1 - down / sigma) * gaussian(x_mid, mid)
        if sigma_next > 0:
            x += up * NOISE
    assert run("DPM++ 2S a", noise_sampler=constant_noise) == pytest.approx(x, rel=1e-5)


def test_dpmpp_sde_first_step_by_hand():
    sigma, sigma_next = 3.0, 1.5
    mid = math.sqrt(sigma * sigma_next)
    down, up = ancestral(sigma, mid)
    x_mid = (down / sigma) * X_T + (1 - down / sigma) * gaussian(X_T, sigma) + up * NOISE
    down, up = ancestral(sigma, sigma_next)
    expected = (down / sigma) * X_T + (1 - down / sigma) * gaussian(x_mid, mid) + up * NOISE
    assert run("DPM++ SDE", [sigma, sigma_next], noise_sampler=constant_noise) == pytest.approx(expected, rel=1e-5)


def sde_first_step(x: float, sigma: float, sigma_next: float) -> float:
    ratio2 = (sigma_next / sigma) ** 2  # exp(-2h) with h = log(sigma / sigma_next)
    return ratio2 * x + (1 - ratio2) * gaussian(x, sigma) + sigma_next * math.sqrt(1 - ratio2) * NOISE


@pytest.mark.parametrize("sampler", ["DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"])
def test_multistep_sde_first_step_by_hand(sampler):
    assert run(sampler, [3.0, 1.5], noise_sampler=constant_noise) == pytest.approx(
        sde_first_step(X_T, 3.0, 1.5), rel=1e-5
    )


@pytest.mark.parametrize("sampler", ["DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"])
def test_multistep_sde_second_step_by_hand(sampler):
    sigmas = [3.0, 1.5, 0.5]
    x1 = sde_first_step(X_T, 3.0, 1.5)
    h_last, h = math.log(3.0 / 1.5), math.log(1.5 / 0.5)
    one_minus = 1 - math.exp(-2 * h)
    difference = (gaussian(x1, 1.5) - gaussian(X_T, 3.0)) * h / h_last
    if sampler == "DPM++ 2M SDE":
        correction = 0.5 * one_minus * difference
    else:  # Heun's correction, and 3M SDE's second-order start (phi_2)
        correction = (1 - one_minus / (2 * h)) * difference
    expected = sde_first_step(x1, 1.5, 0.5) + correction
    assert run(sampler, sigmas, noise_sampler=constant_noise) == pytest.approx(expected, rel=1e-5)


def test_dpmpp_3m_sde_third_step_by_hand():
    sigmas = [3.0, 1.5, 0.5, 0.2]
    xs, denoised, hs = [X_T], [], []
    for i in range(3):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        h = math.log(sigma / sigma_next)
        decay = math.exp(-2 * h)
        now = gaussian(xs[-1], sigma)
        x = decay * xs[-1] + (1 - decay) * now
        phi_2 = math.expm1(-2 * h) / (2 * h) + 1
        if i == 1:
            x += phi_2 * (now - denoised[-1]) / (hs[-1] / h)
        elif i == 2:
            r0, r1 = hs[-1] / h, hs[-2] / h
            d1_0, d1_1 = (now - denoised[-1]) / r0, (denoised[-1] - denoised[-2]) / r1
            first = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            second = (d1_0 - d1_1) / (r0 + r1)
            x += phi_2 * first - (phi_2 / (2 * h) - 0.5) * second
        xs.append(x + sigma_next * math.sqrt(1 - decay) * NOISE)
        denoised.append(now)
        hs.append(h)
    assert run("DPM++ 3M SDE", sigmas, noise_sampler=constant_noise) == pytest.approx(xs[-1], rel=1e-5)


@pytest.mark.parametrize("sampler", ["DPM++ 2M SDE", "DPM++ 3M SDE"])
def test_sde_samplers_return_the_denoised_estimate_on_the_step_to_zero(sampler):
    assert run(sampler, [1.0, 0.0], noise_sampler=constant_noise) == pytest.approx(gaussian(X_T, 1.0), rel=1e-6)


# --- timestep samplers in A1111's variance-preserving space ------------------------------------------------------


def to_vp(x_ve: float, sigma: float) -> float:
    return x_ve / math.sqrt(1 + sigma**2)


def test_ddim_is_euler_in_the_sigma_parametrisation():
    # DDIM with eta 0 takes exactly Euler steps in (sigma, x / sqrt(alphas_cumprod)) (Karras et al. 2022)
    sigmas = [8.0, 3.0, 1.0, 0.2]
    x = X_T
    for sigma, sigma_next in zip(sigmas, sigmas[1:], strict=False):
        x = x + (sigma_next - sigma) * d(x, sigma)
    assert run("DDIM", sigmas) == pytest.approx(to_vp(x, sigmas[-1]), rel=1e-5)


def test_ddim_step_in_a1111_form():
    sigma, sigma_next = 3.0, 1.0
    a_t, a_prev = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
    x_vp = to_vp(X_T, sigma)
    eps = (X_T - gaussian(X_T, sigma)) / sigma
    pred_x0 = (x_vp - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    expected = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev) * eps
    assert run("DDIM", [sigma, sigma_next]) == pytest.approx(expected, rel=1e-5)
    eta = 0.5
    s = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    noisy = math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev - s**2) * eps + s * NOISE
    assert run("DDIM", [sigma, sigma_next], eta=eta, noise_sampler=constant_noise) == pytest.approx(noisy, rel=1e-5)


def test_plms_starts_with_heun_then_adams_bashforth_on_eps():
    sigmas = [8.0, 3.0, 1.0]
    eps0 = d(X_T, 8.0)
    predicted = X_T + (3.0 - 8.0) * eps0
    x1 = X_T + (3.0 - 8.0) * (eps0 + d(predicted, 3.0)) / 2
    assert run("PLMS", sigmas[:2]) == pytest.approx(to_vp(x1, 3.0), rel=1e-5)
    x2 = x1 + (1.0 - 3.0) * (3 * d(x1, 3.0) - eps0) / 2
    assert run("PLMS", sigmas) == pytest.approx(to_vp(x2, 1.0), rel=1e-5)


def test_plms_higher_orders_by_hand():
    sigmas = [9.0, 5.0, 3.0, 1.5, 0.8, 0.3]
    eps = [d(X_T, 9.0)]
    predicted = X_T + (5.0 - 9.0) * eps[0]
    xs = [X_T, X_T + (5.0 - 9.0) * (eps[0] + d(predicted, 5.0)) / 2]
    weights = {1: (3, -1), 2: (23, -16, 5), 3: (55, -59, 37, -9)}
    denominators = {1: 2, 2: 12, 3: 24}
    for i in range(1, 5):
        eps.append(d(xs[-1], sigmas[i]))
        history = min(len(eps) - 1, 3)
        combined = sum(w * e for w, e in zip(weights[history], reversed(eps), strict=False)) / denominators[history]
        xs.append(xs[-1] + (sigmas[i + 1] - sigmas[i]) * combined)
    assert run("PLMS", sigmas) == pytest.approx(to_vp(xs[-1], 0.3), rel=1e-5)


def test_lms_fourth_order_by_gauss_legendre_quadrature():
    sigmas = [9.0, 5.0, 3.0, 1.5, 0.8, 0.0]
    nodes, weights = np.polynomial.legendre.leggauss(4)

    def integral_of_interpolant(points: list[float], values: list[float], a: float, b: float) -> float:
        total = 0.0
        for node, weight in zip(nodes, weights, strict=True):
            tau = (b - a) / 2 * node + (a + b) / 2
            lagrange = 0.0
            for j, (pj, vj) in enumerate(zip(points, values, strict=True)):
                basis = 1.0
                for k, pk in enumerate(points):
                    if k != j:
                        basis *= (tau - pk) / (pj - pk)
                lagrange += vj * basis
            total += weight * lagrange * (b - a) / 2
        return total

    x, history = X_T, []
    for i in range(len(sigmas) - 1):
        history.append((sigmas[i], d(x, sigmas[i])))
        history = history[-4:]
        x = x + integral_of_interpolant([p for p, _ in history], [v for _, v in history], sigmas[i], sigmas[i + 1])
    assert run("LMS", sigmas) == pytest.approx(x, rel=1e-5)


def test_unipc_second_order_step_by_hand():
    sigmas = [8.0, 3.0, 1.0, 0.4]
    alpha = [1 / math.sqrt(1 + s**2) for s in sigmas]
    vp_sigma = [s / math.sqrt(1 + s**2) for s in sigmas]
    lam = [-math.log(s) for s in sigmas]

    def model(x_vp: float, i: int) -> float:
        return gaussian(x_vp / alpha[i], sigmas[i])

    def base(x_vp: float, i: int, m_prev: float) -> float:
        return (vp_sigma[i] / vp_sigma[i - 1]) * x_vp - alpha[i] * math.expm1(lam[i - 1] - lam[i]) * m_prev

    x0 = to_vp(X_T, sigmas[0])
    m0 = model(x0, 0)
    # step 1: order 1, corrector weight 1/2, B(h) = h (variant bh1)
    h = lam[1] - lam[0]
    predicted = base(x0, 1, m0)
    m1 = model(predicted, 1)
    x1 = predicted - alpha[1] * (-h) * 0.5 * (m1 - m0)
    # step 2: order 2 predictor (weight 1/2) and corrector solving the order conditions
    h = lam[2] - lam[1]
    r1 = (lam[0] - lam[1]) / h
    d1 = (m0 - m1) / r1
    hh = -h
    phi_1 = math.expm1(hh) / hh - 1
    phi_2 = phi_1 / hh - 0.5
    b1, b2 = phi_1 / hh, phi_2 * 2 / hh
    c0 = (b1 - b2) / (1 - r1)
    c1 = b1 - c0
    start = base(x1, 2, m1)
    predicted = start - alpha[2] * hh * 0.5 * d1
    m2 = model(predicted, 2)
    x2 = start - alpha[2] * hh * (c0 * d1 + c1 * (m2 - m1))
    # step 3 is the last: first order, no corrector
    expected = base(x2, 3, m2)
    assert run("UniPC", sigmas) == pytest.approx(expected, rel=1e-5)


def test_unipc_first_step_is_a_corrected_dpm_solver_step():
    sigma, sigma_next, last = 8.0, 3.0, 1.0

    def vp(s: float) -> tuple[float, float]:
        return 1 / math.sqrt(1 + s**2), s / math.sqrt(1 + s**2)  # alpha, VP sigma

    s0, (a1, s1) = vp(sigma)[1], vp(sigma_next)
    h = math.log(sigma / sigma_next)
    x0_vp = to_vp(X_T, sigma)
    m0 = gaussian(X_T, sigma)
    predicted = (s1 / s0) * x0_vp - a1 * math.expm1(-h) * m0
    m1 = gaussian(predicted / a1, sigma_next)
    corrected = predicted - a1 * (-h) * 0.5 * (m1 - m0)
    # with two steps the second is the final one: first order, no corrector
    a2, s2 = vp(last)
    h2 = math.log(sigma_next / last)
    expected = (s2 / s1) * corrected - a2 * math.expm1(-h2) * m1
    assert run("UniPC", [sigma, sigma_next, last]) == pytest.approx(expected, rel=1e-5)


def test_timestep_samplers_need_sigmas_above_zero():
    with pytest.raises(GenerationError, match="timesteps"):
        run("DDIM", SIGMAS)


# --- exactness, convergence and distributions ----------------------------------------------------------------


DETERMINISTIC = ["Euler", "Heun", "LMS", "DPM2", "DPM++ 2M"]
TIMESTEP = ["DDIM", "PLMS", "UniPC"]


@pytest.mark.parametrize("sampler", DETERMINISTIC + TIMESTEP)
def test_point_mass_data_is_solved_exactly(sampler):
    c = torch.tensor([[0.25, -1.0]])
    calls: list[tuple[float, torch.Tensor]] = []

    def point(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        calls.append((float(sigma[0]), x.clone()))
        return c.expand_as(x)

    sigmas = a1111_sigmas(sampler, 12)
    noise = torch.tensor([[1.5, -0.5]])
    x_t = initial_latent(sampler, noise, sigmas)
    result = sample(sampler, point, x_t, sigmas)
    sigma_t, sigma_end = float(sigmas[0]), float(sigmas[-1])
    # every denoiser input lies on the exact trajectory c + (x_T - c) * sigma / sigma_T
    for sigma, x in calls:
        assert torch.allclose(x, c + (x_t - c) * sigma / sigma_t, rtol=1e-4, atol=1e-5)
    expected = c + (x_t - c) * sigma_end / sigma_t
    if sampler in TIMESTEP:
        expected = expected / math.sqrt(1 + sigma_end**2)
    assert torch.allclose(result, expected, rtol=1e-5, atol=1e-6)


def gaussian_error(sampler: str, steps: int) -> float:
    sigmas = schedule_sigmas("karras", steps)[:-1]  # stop at sigma_min, where the ODE solution is known
    x_t = torch.tensor([[-2.0], [0.5], [3.0]]) * sigmas[0]
    result = sample(sampler, gaussian_denoiser, x_t, sigmas)
    sigma_t, sigma_end = float(sigmas[0]), float(sigmas[-1])
    exact = MU + (x_t - MU) * math.sqrt(S2 + sigma_end**2) / math.sqrt(S2 + sigma_t**2)
    if sampler in TIMESTEP:
        exact = exact / math.sqrt(1 + sigma_end**2)
    return float((result - exact).abs().max())


@pytest.mark.parametrize(
    ("sampler", "min_ratio"),
    [("Euler", 1.8), ("DDIM", 1.8), ("Heun", 3.5), ("DPM2", 3.5), ("DPM++ 2M", 3.5), ("PLMS", 3.5), ("LMS", 6.0)],
)
def test_deterministic_samplers_converge_at_their_order(sampler, min_ratio):
    coarse, fine = gaussian_error(sampler, 20), gaussian_error(sampler, 40)
    assert fine < 0.2
    assert coarse / fine > min_ratio


def test_unipc_converges_fast():
    assert gaussian_error("UniPC", 20) < 5e-3
    assert gaussian_error("UniPC", 40) < 1e-3


@pytest.mark.parametrize(
    "sampler", ["DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"]
)
def test_stochastic_samplers_draw_from_the_data_distribution(sampler):
    sigmas = a1111_sigmas(sampler, 30)
    noise = torch.randn((6000, 1), generator=torch.Generator().manual_seed(11))
    result = sample(sampler, gaussian_denoiser, noise * sigmas[0], sigmas, seed=5)
    assert float(result.mean()) == pytest.approx(MU, abs=0.03)
    assert float(result.std()) == pytest.approx(math.sqrt(S2), abs=0.03)


def test_default_noise_is_seeded():
    sigmas = a1111_sigmas("Euler a", 8)
    x = torch.ones((2, 3)) * sigmas[0]
    first = sample("Euler a", gaussian_denoiser, x, sigmas, seed=4)
    assert torch.equal(first, sample("Euler a", gaussian_denoiser, x, sigmas, seed=4))
    assert not torch.equal(first, sample("Euler a", gaussian_denoiser, x, sigmas, seed=5))


def test_brownian_noise_is_per_image_and_batch_independent():
    sigmas = a1111_sigmas("DPM++ 2M SDE", 10)
    x = torch.randn((3, 2, 4, 4), generator=torch.Generator().manual_seed(1)) * sigmas[0]
    batch = sample("DPM++ 2M SDE", gaussian_denoiser, x, sigmas, seed=[10, 11, 12])
    single = sample("DPM++ 2M SDE", gaussian_denoiser, x[1:2], sigmas, seed=[11])
    assert torch.allclose(batch[1:2], single, atol=1e-6)
    positive = sigmas[sigmas > 0]
    sampler = brownian_noise_sampler(x[1:2], positive.min(), sigmas.max(), [11])
    again = sample("DPM++ 2M SDE", gaussian_denoiser, x[1:2], sigmas, noise_sampler=sampler)
    assert torch.allclose(again, single, atol=1e-6)
    with pytest.raises(GenerationError, match="one Brownian seed per image"):
        sample("DPM++ 2M SDE", gaussian_denoiser, x, sigmas, seed=[1, 2])


def test_brownian_increments_are_consistent_and_unit_scaled():
    x = torch.zeros((1, 4000))
    noise = brownian_noise_sampler(x, 0.1, 10.0, 3)
    whole = noise(torch.tensor(10.0), torch.tensor(0.1)) * math.sqrt(9.9)
    first = noise(torch.tensor(10.0), torch.tensor(2.0)) * math.sqrt(8.0)
    second = noise(torch.tensor(2.0), torch.tensor(0.1)) * math.sqrt(1.9)
    assert torch.allclose(whole, first + second, atol=1e-4)  # increments of one Brownian path add up
    assert float(noise(torch.tensor(5.0), torch.tensor(4.0)).std()) == pytest.approx(1.0, abs=0.05)


NOISE_CALLS = [
    ("Euler", {}, 0),
    ("Euler", {"s_churn": 1.0}, 10),
    ("Euler a", {}, 9),
    ("DPM2 a", {}, 9),
    ("DPM++ 2S a", {}, 9),
    ("DPM++ SDE", {}, 18),
    ("DPM++ 2M SDE", {}, 9),
    ("DPM++ 3M SDE", {}, 9),
    ("DDIM", {}, 0),
    ("DDIM", {"eta": 0.5}, 9),
]


@pytest.mark.parametrize(("sampler", "options", "calls"), NOISE_CALLS)
def test_noise_is_drawn_as_often_as_k_diffusion_draws_it(sampler, options, calls):
    count = 0

    def counting(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        return torch.zeros((1, 1))

    sigmas = a1111_sigmas(sampler, 10)
    if sampler.startswith("DPM++ 3M"):
        sigmas = schedule_sigmas("exponential", 10)  # without the discarded penultimate sigma
    sample(sampler, gaussian_denoiser, torch.ones((1, 1)), sigmas, noise_sampler=counting, **options)
    assert count == calls


def test_a1111_noise_stream_drives_euler_a():
    sigmas = a1111_sigmas("Euler a", 4)
    noise = A1111Noise((1, 2, 2), [77], source="CPU", ensd=31337)
    x_t = initial_latent("Euler a", noise.initial_noise(), sigmas)
    result = sample("Euler a", gaussian_denoiser, x_t, sigmas, noise_sampler=noise.noise_sampler)
    steps = torch.Generator().manual_seed(77 + 31337)
    x = (randn(77, (1, 2, 2), "CPU") * sigmas[0]).double()
    for i in range(4):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        down, up = ancestral(sigma, sigma_next) if sigma_next > 0 else (0.0, 0.0)
        denoised = (S2 * x + sigma**2 * MU) / (S2 + sigma**2)
        x = x + (down - sigma) * (x - denoised) / sigma
        if sigma_next > 0:
            x = x + up * torch.randn((1, 2, 2), generator=steps).double()
    assert torch.allclose(result[0].double(), x, atol=1e-4)


def test_initial_latent_scales_for_each_kind_of_sampler():
    noise = torch.ones((1, 1))
    sigmas = a1111_sigmas("DDIM", 10)
    assert float(initial_latent("Euler", noise, torch.tensor([5.0, 0.0]))) == 5.0
    sgm = initial_latent("Euler", noise, torch.tensor([5.0, 0.0]), sgm_noise_multiplier=True)
    assert float(sgm) == pytest.approx(math.sqrt(26.0))
    first_inputs: list[torch.Tensor] = []

    def recording(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        first_inputs.append(x / math.sqrt(1 + float(sigma[0]) ** 2))
        return x * 0

    sample("DDIM", recording, initial_latent("DDIM", noise, sigmas), sigmas)
    assert float(first_inputs[0]) == pytest.approx(1.0, rel=1e-6)  # A1111 starts DDIM from the unit noise


@pytest.mark.parametrize(
    ("sigmas", "message"),
    [([1.0], "at least two"), ([1.0, 2.0], "increase"), ([1.0, -1.0], "negative"), ([float("nan"), 0.0], "finite")],
)
def test_bad_sigma_lists_are_clear_errors(sigmas, message):
    with pytest.raises(GenerationError, match=message):
        run("Euler", sigmas)


def test_unknown_and_unsupported_samplers_are_clear_errors():
    with pytest.raises(GenerationError, match="unknown sampler"):
        run("Eulr")
    with pytest.raises(GenerationError, match="not supported"):
        run("DPM adaptive")
