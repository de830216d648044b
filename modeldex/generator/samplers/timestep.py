"""A1111's own timestep samplers (DDIM, PLMS, UniPC), driven through a k-diffusion style denoiser.

A1111 runs these in the variance-preserving (VP) space of the DDPM: `x_vp = sqrt(a) * x0 + sqrt(1 - a) * eps`
with `a = alphas_cumprod[t]`, starting from unit noise, and asks the model for `eps`. The k-diffusion (VE)
parametrisation used by `sample` is equivalent and exact: `sigma = sqrt((1 - a) / a)`, so `a = 1 / (1 + sigma**2)`,
`x_ve = x_vp * sqrt(1 + sigma**2)` and `eps = (x_ve - denoiser(x_ve, sigma)) / sigma`. So the loops need only the
sigma list from `a1111_sigmas` and the denoiser:

* the input `x` is a VE latent at `sigmas[0]`; it is converted with `x_vp = x / sqrt(1 + sigmas[0]**2)`. A1111's
  txt2img starts these samplers from unit noise `n`, which is `x = n * sqrt(1 + sigmas[0]**2)` here
  (`initial_latent` in `sampling.py` does it), not `n * sigmas[0]`;
* the result is the VP latent at the last timestep, which is what A1111 hands to the VAE (it never reaches sigma 0).

UniPC follows A1111's bundled UniPC (variant bh1, order 3, multistep, lower order at the end, data prediction, time
uniform grid) with alpha, sigma and lambda taken from the noise levels: `alpha = 1 / sqrt(1 + s**2)`, VP sigma
`s * alpha`, `lambda = -log s`. torch is imported inside functions only.
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

UNIPC_ORDER = 3


def _alpha_bar(sigma: float) -> float:
    return 1.0 / (1.0 + sigma * sigma)


def _eps(denoiser: Denoiser, x_vp: torch.Tensor, sigmas: torch.Tensor, i: int) -> torch.Tensor:
    sigma = float(sigmas[i])
    x_ve = x_vp * math.sqrt(1.0 + sigma * sigma)
    denoised = denoiser(x_ve, sigmas[i] * x_vp.new_ones([x_vp.shape[0]]))
    return (x_ve - denoised) / sigma


def to_vp(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A VE latent at `sigma` in A1111's VP space."""
    return x / math.sqrt(1.0 + sigma * sigma)


def ddim(
    denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler, eta: float = 0.0
) -> torch.Tensor:
    """A1111's DDIM loop (`Eta DDIM` = eta; 0 is deterministic); returns the VP latent at the last timestep."""
    x = to_vp(x, float(sigmas[0]))
    for i in range(len(sigmas) - 1):
        a_t, a_prev = _alpha_bar(float(sigmas[i])), _alpha_bar(float(sigmas[i + 1]))
        e_t = _eps(denoiser, x, sigmas, i)
        sigma_t = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        pred_x0 = (x - math.sqrt(1 - a_t) * e_t) / math.sqrt(a_t)
        x = math.sqrt(a_prev) * pred_x0 + math.sqrt(1.0 - a_prev - sigma_t**2) * e_t
        if eta:
            # A1111 draws this noise on every step; with eta 0 it is multiplied by 0 and need not be drawn.
            x = x + sigma_t * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


def plms(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor, noise_sampler: NoiseSampler) -> torch.Tensor:
    """A1111's PLMS loop: pseudo improved Euler first, then Adams-Bashforth of order 2, 3 and 4 on eps."""
    x = to_vp(x, float(sigmas[0]))
    old_eps: list[torch.Tensor] = []

    def step(x_now: torch.Tensor, e: torch.Tensor, i: int) -> torch.Tensor:
        a_t, a_prev = _alpha_bar(float(sigmas[i])), _alpha_bar(float(sigmas[i + 1]))
        pred_x0 = (x_now - math.sqrt(1 - a_t) * e) / math.sqrt(a_t)
        return math.sqrt(a_prev) * pred_x0 + math.sqrt(1 - a_prev) * e

    for i in range(len(sigmas) - 1):
        e_t = _eps(denoiser, x, sigmas, i)
        if not old_eps:
            e_next = _eps(denoiser, step(x, e_t, i), sigmas, i + 1)
            e_prime = (e_t + e_next) / 2
        elif len(old_eps) == 1:
            e_prime = (3 * e_t - old_eps[-1]) / 2
        elif len(old_eps) == 2:
            e_prime = (23 * e_t - 16 * old_eps[-1] + 5 * old_eps[-2]) / 12
        else:
            e_prime = (55 * e_t - 59 * old_eps[-1] + 37 * old_eps[-2] - 9 * old_eps[-3]) / 24
        x = step(x, e_prime, i)
        old_eps.append(e_t)
        if len(old_eps) >= 4:
            old_eps.pop(0)
    return x


class _UniPC:
    """UniPC-bh1 multistep in data-prediction form over a fixed list of noise levels."""

    def __init__(self, denoiser: Denoiser, sigmas: torch.Tensor) -> None:
        self.denoiser = denoiser
        self.sigmas = sigmas
        values = [float(sigma) for sigma in sigmas]
        self.alpha = [1.0 / math.sqrt(1.0 + s * s) for s in values]
        self.sigma_vp = [s / math.sqrt(1.0 + s * s) for s in values]
        self.lam = [-math.log(s) for s in values]

    def model(self, x_vp: torch.Tensor, i: int) -> torch.Tensor:
        x_ve = x_vp / self.alpha[i]
        return self.denoiser(x_ve, self.sigmas[i] * x_vp.new_ones([x_vp.shape[0]]))

    def update(
        self,
        x: torch.Tensor,
        models: list[torch.Tensor],
        indices: list[int],
        target: int,
        order: int,
        use_corrector: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        prev = indices[-1]
        model_prev = models[-1]
        h = self.lam[target] - self.lam[prev]
        rks: list[float] = []
        d1s: list[torch.Tensor] = []
        for k in range(1, order):
            rk = (self.lam[indices[-(k + 1)]] - self.lam[prev]) / h
            rks.append(rk)
            d1s.append((models[-(k + 1)] - model_prev) / rk)
        rks.append(1.0)

        hh = -h
        h_phi_1 = math.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        factorial = 1
        b_h = hh  # variant bh1
        rows: list[list[float]] = []
        b: list[float] = []
        for power in range(1, order + 1):
            rows.append([rk ** (power - 1) for rk in rks])
            b.append(h_phi_k * factorial / b_h)
            factorial *= power + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        r_matrix = np.array(rows)
        b_vector = np.array(b)

        alpha_t = self.alpha[target]
        x_t_ = (self.sigma_vp[target] / self.sigma_vp[prev]) * x - alpha_t * h_phi_1 * model_prev
        x_t = x_t_
        if d1s:
            rhos_p = [0.5] if order == 2 else list(np.linalg.solve(r_matrix[:-1, :-1], b_vector[:-1]))
            prediction = sum((float(rho) * d for rho, d in zip(rhos_p, d1s, strict=True)), start=0 * x)
            x_t = x_t_ - alpha_t * b_h * prediction
        if not use_corrector:
            return x_t, None
        rhos_c = [0.5] if order == 1 else [float(rho) for rho in np.linalg.solve(r_matrix, b_vector)]
        model_t = self.model(x_t, target)
        correction = sum((rho * d for rho, d in zip(rhos_c[:-1], d1s, strict=True)), start=0 * x)
        x_t = x_t_ - alpha_t * b_h * (correction + rhos_c[-1] * (model_t - model_prev))
        return x_t, model_t


def unipc(
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise_sampler: NoiseSampler,
    order: int = UNIPC_ORDER,
) -> torch.Tensor:
    """A1111's UniPC (bh1, order 3, lower order final, corrector on all but the last step); returns the VP latent."""
    steps = len(sigmas) - 1
    order = max(1, min(order, steps))
    solver = _UniPC(denoiser, sigmas)
    x = to_vp(x, float(sigmas[0]))
    models = [solver.model(x, 0)]
    indices = [0]
    for init_order in range(1, order):
        x, model_x = solver.update(x, models, indices, init_order, init_order, use_corrector=True)
        models.append(model_x if model_x is not None else solver.model(x, init_order))
        indices.append(init_order)
    for step_index in range(order, steps + 1):
        step_order = min(order, steps + 1 - step_index)
        last = step_index == steps
        x, model_x = solver.update(x, models, indices, step_index, step_order, use_corrector=not last)
        if not last:
            models = [*models[1:], model_x if model_x is not None else solver.model(x, step_index)]
            indices = [*indices[1:], step_index]
    return x
