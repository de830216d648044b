"""The Stable Diffusion model's own noise levels, as k-diffusion's `DiscreteSchedule` sees them.

SD 1.x, 2.x and SDXL share one training schedule: 1000 "scaled linear" betas from 0.00085 to 0.012 (linear in
sqrt(beta)), computed in float64 and stored by the model as float32 `alphas_cumprod`. k-diffusion turns them into
sigmas `sqrt((1 - a) / a)` (about 0.0292 to 14.6146) and interpolates *log* sigma linearly between timesteps.
A1111's `Downcast alphas_cumprod` (the default before v1.7.0-225) first rounds `alphas_cumprod` to float16, and
k-diffusion then computes the sigmas in float16 too; that is reproduced here.

Imported lazily: torch is imported inside functions only.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

TRAINING_STEPS = 1000
LINEAR_START = 0.00085
LINEAR_END = 0.012


@functools.cache
def _alphas_cumprod_float32() -> torch.Tensor:
    import numpy as np
    import torch

    betas = torch.linspace(LINEAR_START**0.5, LINEAR_END**0.5, TRAINING_STEPS, dtype=torch.float64) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas.numpy(), axis=0)
    return torch.tensor(alphas_cumprod, dtype=torch.float32)


def alphas_cumprod(downcast: bool = False) -> torch.Tensor:
    """The model's `alphas_cumprod` (1000 values, float32; float16 when A1111 downcast them)."""
    values = _alphas_cumprod_float32().clone()
    return values.half() if downcast else values


class DiscreteSchedule:
    """The map between timesteps 0..999 and sigmas that A1111's k-diffusion wrapper uses."""

    def __init__(self, downcast_alphas: bool = False) -> None:
        acp = alphas_cumprod(downcast_alphas)
        # Same expression and dtype as k-diffusion, so a float16 schedule is rounded at every step like A1111's.
        self.sigmas = ((1 - acp) / acp) ** 0.5
        self.log_sigmas = self.sigmas.log()
        self.alphas_cumprod = acp

    @property
    def sigma_min(self) -> float:
        """The smallest model sigma (timestep 0)."""
        return float(self.sigmas[0].item())

    @property
    def sigma_max(self) -> float:
        """The largest model sigma (timestep 999)."""
        return float(self.sigmas[-1].item())

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Sigma at fractional timesteps, by linear interpolation of log sigma."""
        t = t.float()
        low_idx, high_idx, weight = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - weight) * self.log_sigmas[low_idx] + weight * self.log_sigmas[high_idx]
        return log_sigma.exp()

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional timesteps for sigmas: the inverse of `t_to_sigma`, clamped to 0..999."""
        log_sigma = sigma.log()
        dists = log_sigma - self.log_sigmas[:, None]
        low_idx = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.log_sigmas.shape[0] - 2)
        high_idx = low_idx + 1
        low, high = self.log_sigmas[low_idx], self.log_sigmas[high_idx]
        weight = ((low - log_sigma) / (low - high)).clamp(0, 1)
        t = (1 - weight) * low_idx + weight * high_idx
        return t.view(sigma.shape)

    def get_sigmas(self, n: int) -> torch.Tensor:
        """k-diffusion's default schedule: `n` sigmas at timesteps spaced evenly from 999 to 0, then 0."""
        import torch

        t = torch.linspace(len(self.sigmas) - 1, 0, n)
        sigmas = self.t_to_sigma(t)
        return torch.cat([sigmas, sigmas.new_zeros([1])])


@functools.cache
def _schedule(downcast_alphas: bool) -> DiscreteSchedule:
    return DiscreteSchedule(downcast_alphas)


def model_schedule(downcast_alphas: bool = False) -> DiscreteSchedule:
    """The shared (cached, read-only) discrete schedule of SD 1.x, 2.x and SDXL."""
    return _schedule(bool(downcast_alphas))
