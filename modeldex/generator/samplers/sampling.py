"""`sample`: run an A1111 sampler over a sigma list with a k-diffusion style denoiser.

The denoiser convention is k-diffusion's: `denoiser(x, sigma)` returns the denoised estimate of `x` at noise level
`sigma` (a float32 tensor of shape `(batch,)`, the same value for every image). A diffusers UNet that predicts eps is
wrapped as `denoised = x - sigma * eps(x / sqrt(sigma**2 + 1), t(sigma))` with `t` from
`DiscreteSchedule.sigma_to_t`. The timestep samplers (DDIM, PLMS, UniPC) derive eps and the DDPM alphas from that
same denoiser and the sigmas, exactly (see `timestep.py`).

torch is imported inside functions only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from modeldex.errors import GenerationError
from modeldex.generator.samplers import kdiffusion, timestep
from modeldex.generator.samplers.brownian import brownian_noise_sampler
from modeldex.generator.samplers.names import TIMESTEP, SamplerInfo, find_sampler, split_sampler_name

if TYPE_CHECKING:
    import torch

    Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

Seed = int | Sequence[int] | None


def _sampler_info(sampler: str) -> SamplerInfo:
    return find_sampler(split_sampler_name(sampler)[0])


def initial_latent(
    sampler: str, noise: torch.Tensor, sigmas: torch.Tensor, *, sgm_noise_multiplier: bool = False
) -> torch.Tensor:
    """The starting `x` for `sample` from A1111's unit initial noise (txt2img).

    k-diffusion samplers start from `noise * sigmas[0]` (`noise * sqrt(1 + sigmas[0]**2)` with A1111's
    `SGM noise multiplier: True`). A1111 starts DDIM, PLMS and UniPC from the unit noise itself in VP space, which
    is `noise * sqrt(1 + sigmas[0]**2)` in the sigma parametrisation `sample` uses.
    """
    sigma = float(sigmas[0])
    if _sampler_info(sampler).kind == TIMESTEP or sgm_noise_multiplier:
        return noise * math.sqrt(1.0 + sigma * sigma)
    return noise * sigma


def _torch_noise_sampler(x: torch.Tensor, seed: Seed) -> NoiseSampler:
    import torch

    if seed is None or isinstance(seed, int):
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)

        def draw(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
            return torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)

        return draw
    seeds = list(seed)
    if len(seeds) != x.shape[0]:
        raise GenerationError(f"one seed per image is needed: got {len(seeds)} for a batch of {x.shape[0]}")
    generators = [torch.Generator().manual_seed(int(value)) for value in seeds]

    def draw_per_image(sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        images = [torch.randn(x.shape[1:], generator=g, dtype=torch.float32) for g in generators]
        return torch.stack(images).to(x.device, x.dtype)

    return draw_per_image


def _check_sigmas(sigmas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    import torch

    sigmas = torch.as_tensor(sigmas).detach().to(device=x.device, dtype=torch.float32)
    if sigmas.ndim != 1 or len(sigmas) < 2:
        raise GenerationError("sampling needs a 1-D list of at least two sigmas (one step)")
    if not bool(torch.isfinite(sigmas).all()) or bool((sigmas < 0).any()):
        raise GenerationError("sigmas must be finite and not negative")
    if bool((sigmas[1:] > sigmas[:-1]).any()):
        raise GenerationError("sigmas must not increase")
    if x.ndim < 1 or x.shape[0] < 1:
        raise GenerationError("x must be a batch of latents (batch first)")
    return sigmas


def sample(
    sampler: str,
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    noise_sampler: NoiseSampler | None = None,
    seed: Seed = None,
    eta: float | None = None,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
) -> torch.Tensor:
    """Run the A1111 sampler `sampler` (`Euler a`, `DPM++ 2M`, `DDIM`...) and return the final latent.

    `x` is the noisy starting latent (`noise * sigmas[0]` for txt2img; `initial_latent` gives the exact start for
    every sampler). `noise_sampler(sigma, sigma_next)` supplies the noise of ancestral, SDE and DDIM-eta steps;
    by default it is torch noise from a CPU generator seeded with `seed`, and for DPM++ SDE, 2M SDE (Heun) and 3M
    SDE a Brownian tree from `brownian_noise_sampler(x, smallest sigma > 0, largest sigma, seed)`; `seed` may be
    one seed per image, as A1111 gives them. Pass `A1111Noise.noise_sampler` to replay A1111's own stream.
    `eta` is A1111's `Eta` (default 1) or, for DDIM, `Eta DDIM` (default 0); `s_churn`, `s_tmin`, `s_tmax` and
    `s_noise` are the `Sigma churn`/`tmin`/`tmax`/`noise` settings of Euler, Heun and DPM2.

    The result is the latent A1111 decodes: at sigmas[-1] (0 for most schedules), and for DDIM, PLMS and UniPC the
    variance-preserving latent at their last timestep.
    """
    import torch

    info = _sampler_info(sampler)
    sigmas = _check_sigmas(sigmas, x)
    with torch.no_grad():
        if noise_sampler is None:
            if info.brownian_noise:
                positive = sigmas[sigmas > 0]
                if len(positive) == 0:
                    raise GenerationError(f"{info.label} needs at least one sigma above 0")
                noise_sampler = brownian_noise_sampler(x, positive.min(), sigmas.max(), seed)
            else:
                noise_sampler = _torch_noise_sampler(x, seed)
        return _run(info, denoiser, x, sigmas, noise_sampler, eta, (s_churn, s_tmin, s_tmax, s_noise))


def _run(
    info: SamplerInfo,
    denoiser: Denoiser,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    noise_sampler: NoiseSampler,
    eta: float | None,
    churn: tuple[float, float, float, float],
) -> torch.Tensor:
    ancestral_eta = 1.0 if eta is None else float(eta)
    algorithm = info.algorithm
    if info.kind == TIMESTEP and bool((sigmas <= 0).any()):
        raise GenerationError(f"{info.label} runs on timesteps; its sigmas end above 0 (use a1111_sigmas)")
    if algorithm == "euler":
        return kdiffusion.euler(denoiser, x, sigmas, noise_sampler, churn)
    if algorithm == "heun":
        return kdiffusion.heun(denoiser, x, sigmas, noise_sampler, churn)
    if algorithm == "dpm_2":
        return kdiffusion.dpm_2(denoiser, x, sigmas, noise_sampler, churn)
    if algorithm == "euler_ancestral":
        return kdiffusion.euler_ancestral(denoiser, x, sigmas, noise_sampler, ancestral_eta)
    if algorithm == "dpm_2_ancestral":
        return kdiffusion.dpm_2_ancestral(denoiser, x, sigmas, noise_sampler, ancestral_eta)
    if algorithm == "dpmpp_2s_ancestral":
        return kdiffusion.dpmpp_2s_ancestral(denoiser, x, sigmas, noise_sampler, ancestral_eta)
    if algorithm == "dpmpp_sde":
        return kdiffusion.dpmpp_sde(denoiser, x, sigmas, noise_sampler, ancestral_eta)
    if algorithm == "dpmpp_2m_sde":
        solver_type = info.solver_type or "midpoint"
        return kdiffusion.dpmpp_2m_sde(denoiser, x, sigmas, noise_sampler, ancestral_eta, solver_type)
    if algorithm == "dpmpp_3m_sde":
        return kdiffusion.dpmpp_3m_sde(denoiser, x, sigmas, noise_sampler, ancestral_eta)
    if algorithm == "lms":
        return kdiffusion.lms(denoiser, x, sigmas, noise_sampler)
    if algorithm == "dpmpp_2m":
        return kdiffusion.dpmpp_2m(denoiser, x, sigmas, noise_sampler)
    if algorithm == "ddim":
        return timestep.ddim(denoiser, x, sigmas, noise_sampler, 0.0 if eta is None else float(eta))
    if algorithm == "plms":
        return timestep.plms(denoiser, x, sigmas, noise_sampler)
    if algorithm == "unipc":
        return timestep.unipc(denoiser, x, sigmas, noise_sampler)
    raise GenerationError(f"sampler {info.label!r} has no sampling loop")
