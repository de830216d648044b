"""k-diffusion's sampling loops as A1111 runs them (the k-diffusion revision A1111 pins), written for modeldex.

Conventions, all k-diffusion's: `denoiser(x, sigma)` returns the denoised estimate for a latent `x` at noise level
`sigma` (a float32 tensor of shape `(batch,)`); `sigmas` is a descending float32 list, usually ending in 0; `x`
starts as noise scaled by `sigmas[0]`; `noise_sampler(sigma, sigma_next)` returns unit Gaussian noise shaped like
`x` for the step from `sigma` to `sigma_next`. The ODE derivative is `d = (x - denoised) / sigma`; DPM-Solver++
variants work in `t = -log(sigma)`.

Each loop calls the noise sampler exactly when and as often as k-diffusion draws noise, so A1111's per-step noise
stream (`A1111Noise.noise_sampler`) and Brownian trees line up call for call. torch is imported inside functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LMS_ORDER = 4


def _d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    return (x - denoised) / sigma


def ancestral_step(
    sigma_from: torch.Tensor, sigma_to: torch.Tensor, eta: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Split a step into the deterministic part down to `sigma_down` and the fresh noise `sigma_up` added back."""
    import torch

    if not eta:
        return sigma_to, 0.0
    sigma_up = torch.minimum(sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def _churn_gamma(sigma: torch.Tensor, steps: int, s_churn: float, s_tmin: float, s_tmax: float) -> float:
    # Karras et al.'s "churn": temporarily raise the noise level of steps inside [s_tmin, s_tmax].
    if s_tmin <= float(sigma) <= s_tmax:
        return min(s_churn / steps, 2**0.5 - 1)
    return 0.0


def _churned(
    x: torch.Tensor,
    sigmas: torch.Tensor,
    i: int,
    noise_sampler: NoiseSampler,
    churn: tuple[float, float, float, float],
) -> tuple[torch.Tensor, torch.Tensor]:
    s_churn, s_tmin, s_tmax, s_noise = churn
    if s_churn <= 0:
        return x, sigmas[i]
    gamma = _churn_gamma(sigmas[i], len(sigmas) - 1, s_churn, s_tmin, s_tmax)
    # k-diffusion draws this noise on every step once churn is on, used or not; so does A1111's stream.
    eps = noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + eps * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def euler(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise_sampler: NoiseSampler,
    churn: tuple[float, float, float, float] = (0.0, 0.0, math.inf, 1.0),
) -> torch.Tensor:
    """Euler steps of the probability-flow ODE (Karras et al. 2022, Algorithm 2 without the second order)."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise_sampler, churn)
        denoised = denoiser(x, sigma_hat * s_in)
        x = x + _d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
    return x


def euler_ancestral(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler, eta: float = 1.0
) -> torch.Tensor:
    """Euler steps down to sigma_down, then fresh noise up to the next sigma ("Euler a")."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = x + _d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


def heun(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise_sampler: NoiseSampler,
    churn: tuple[float, float, float, float] = (0.0, 0.0, math.inf, 1.0),
) -> torch.Tensor:
    """Heun's second-order method; the last step to sigma 0 is an Euler step."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise_sampler, churn)
        denoised = denoiser(x, sigma_hat * s_in)
        d = _d(x, sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = _d(x_2, sigmas[i + 1], denoiser(x_2, sigmas[i + 1] * s_in))
        x = x + (d + d_2) / 2 * dt
    return x


def _log_midpoint(sigma_a: torch.Tensor, sigma_b: torch.Tensor) -> torch.Tensor:
    return sigma_a.log().lerp(sigma_b.log(), 0.5).exp()


def dpm_2(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise_sampler: NoiseSampler,
    churn: tuple[float, float, float, float] = (0.0, 0.0, math.inf, 1.0),
) -> torch.Tensor:
    """DPM-Solver-2 style midpoint steps (midpoint in log sigma); the last step to 0 is an Euler step."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churned(x, sigmas, i, noise_sampler, churn)
        d = _d(x, sigma_hat, denoiser(x, sigma_hat * s_in))
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
            continue
        sigma_mid = _log_midpoint(sigma_hat, sigmas[i + 1])
        x_2 = x + d * (sigma_mid - sigma_hat)
        d_2 = _d(x_2, sigma_mid, denoiser(x_2, sigma_mid * s_in))
        x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


def dpm_2_ancestral(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler, eta: float = 1.0
) -> torch.Tensor:
    """DPM-Solver-2 steps down to sigma_down, then fresh noise ("DPM2 a")."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        d = _d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
            continue
        sigma_mid = _log_midpoint(sigmas[i], sigma_down)
        x_2 = x + d * (sigma_mid - sigmas[i])
        d_2 = _d(x_2, sigma_mid, denoiser(x_2, sigma_mid * s_in))
        x = x + d_2 * (sigma_down - sigmas[i])
        x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


def lms_coefficient(order: int, t: np.ndarray, i: int, j: int) -> float:
    """The weight of the derivative at `t[i - j]` in a linear multistep step from `t[i]` to `t[i + 1]`.

    The integral over [t[i], t[i+1]] of the Lagrange basis polynomial through t[i], ..., t[i - order + 1], computed
    exactly (k-diffusion integrates the same polynomial numerically).
    """
    if order - 1 > i:
        raise ValueError(f"order {order} is too high for step {i}")
    basis = np.polynomial.Polynomial([1.0])
    for k in range(order):
        if k != j:
            basis = basis * np.polynomial.Polynomial([-t[i - k], 1.0]) / (t[i - j] - t[i - k])
    antiderivative = basis.integ()
    return float(antiderivative(t[i + 1]) - antiderivative(t[i]))


def lms(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler, order: int = LMS_ORDER
) -> torch.Tensor:
    """Linear multistep (up to 4 past derivatives) in sigma."""
    s_in = x.new_ones([x.shape[0]])
    nodes = sigmas.detach().cpu().float().numpy().astype(np.float64)
    derivatives: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in)
        derivatives.append(_d(x, sigmas[i], denoised))
        if len(derivatives) > order:
            derivatives.pop(0)
        current = min(i + 1, order)
        coefficients = [lms_coefficient(current, nodes, i, j) for j in range(current)]
        for coefficient, derivative in zip(coefficients, reversed(derivatives), strict=True):
            x = x + coefficient * derivative
    return x


def _t(sigma: torch.Tensor) -> torch.Tensor:
    return sigma.log().neg()


def _sigma(t: torch.Tensor) -> torch.Tensor:
    return t.neg().exp()


def dpmpp_2s_ancestral(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler, eta: float = 1.0
) -> torch.Tensor:
    """DPM-Solver++(2S) single-step second-order steps down to sigma_down, then fresh noise ("DPM++ 2S a")."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if sigma_down == 0:
            x = x + _d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t(sigmas[i]), _t(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma(s) / _sigma(t)) * x - (-h / 2).expm1() * denoised
            denoised_2 = denoiser(x_2, _sigma(s) * s_in)
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


def dpmpp_sde(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise_sampler: NoiseSampler,
    eta: float = 1.0,
    r: float = 0.5,
) -> torch.Tensor:
    """DPM-Solver++ stochastic second-order steps with an intermediate point at fraction `r` ("DPM++ SDE")."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in)
        if sigmas[i + 1] == 0:
            x = x + _d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        s = t + h * r
        fac = 1 / (2 * r)
        sigma_down, sigma_up = ancestral_step(_sigma(t), _sigma(s), eta)
        s_ = _t(sigma_down)
        x_2 = (_sigma(s_) / _sigma(t)) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + noise_sampler(_sigma(t), _sigma(s)) * sigma_up
        denoised_2 = denoiser(x_2, _sigma(s) * s_in)
        sigma_down, sigma_up = ancestral_step(_sigma(t), _sigma(t_next), eta)
        t_next_ = _t(sigma_down)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (_sigma(t_next_) / _sigma(t)) * x - (t - t_next_).expm1() * denoised_d
        x = x + noise_sampler(_sigma(t), _sigma(t_next)) * sigma_up
    return x


def dpmpp_2m(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler) -> torch.Tensor:
    """DPM-Solver++(2M): second-order multistep; first-order on the first step and on the step to 0."""
    s_in = x.new_ones([x.shape[0]])
    old_denoised: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            denoised_d = denoised
        else:
            r = (t - _t(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def dpmpp_2m_sde(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise_sampler: NoiseSampler,
    eta: float = 1.0,
    solver_type: str = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE with the midpoint or Heun second-order correction; the step to 0 returns `denoised`."""
    if solver_type not in {"midpoint", "heun"}:
        raise ValueError(f"solver_type must be 'midpoint' or 'heun', not {solver_type!r}")
    s_in = x.new_ones([x.shape[0]])
    old_denoised: torch.Tensor | None = None
    h_last: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None and h_last is not None:
                r = h_last / h
                if solver_type == "heun":
                    factor = (-h - eta_h).expm1().neg() / (-h - eta_h) + 1
                else:
                    factor = 0.5 * (-h - eta_h).expm1().neg()
                x = x + factor * (1 / r) * (denoised - old_denoised)
            if eta:
                scale = sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt()
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * scale
            h_last = h
        old_denoised = denoised
    return x


def dpmpp_3m_sde(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler, eta: float = 1.0
) -> torch.Tensor:
    """DPM-Solver++(3M) SDE: third-order multistep with two past denoised estimates; the step to 0 returns it."""
    s_in = x.new_ones([x.shape[0]])
    denoised_1: torch.Tensor | None = None
    denoised_2: torch.Tensor | None = None
    h_1: torch.Tensor | None = None
    h_2: torch.Tensor | None = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
            h_eta = h * (eta + 1)
            x = (-h_eta).exp() * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None and h_1 is not None and denoised_1 is not None and denoised_2 is not None:
                r0 = h_1 / h
                r1 = h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None and denoised_1 is not None:
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * ((denoised - denoised_1) / (h_1 / h))
            if eta:
                scale = sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt()
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * scale
            h_1, h_2 = h, h_1
        denoised_1, denoised_2 = denoised, denoised_1
    return x
