"""The sigma list A1111 samples with, for every sampler name and schedule type (`a1111_sigmas`).

Each schedule follows A1111's `modules/sd_schedulers.py` and k-diffusion's `get_sigmas_*` functions operation by
operation (float32 tensors where they use tensors, float64 numpy where they use numpy), so the lists match A1111's
to float32 rounding. The model's range (`sigma_min` ~0.0292, `sigma_max` ~14.6146) comes from the discrete schedule
(`discrete.py`); `Schedule min sigma`, `Schedule max sigma` and `Schedule rho` override it where A1111 applies them.

DDIM, PLMS and UniPC are timestep samplers: their "sigmas" are the noise levels of the timesteps A1111 visits, and
they end at the last visited timestep instead of 0 (see `timestep.py`).

torch is imported inside functions only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from modeldex.errors import GenerationError
from modeldex.generator.samplers.ays import align_your_steps
from modeldex.generator.samplers.discrete import TRAINING_STEPS, DiscreteSchedule, model_schedule
from modeldex.generator.samplers.names import TIMESTEP, find_schedule, resolve_sampler

if TYPE_CHECKING:
    import torch

SUPPORTED_FAMILIES = ("sd1", "sd2", "sdxl", "sdxl_refiner")
BETA_ALPHA_DEFAULT = 0.6
BETA_BETA_DEFAULT = 0.6
UNIPC_ORDER = 3


def _append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.cat([sigmas, sigmas.new_zeros([1])])


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022): `n` sigmas evenly spaced in sigma**(1/rho), then 0."""
    import torch

    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """`n` sigmas evenly spaced in log sigma, then 0."""
    import torch

    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """`n` sigmas on a polynomial (power `rho`) in log sigma, then 0; rho 1 is `exponential`."""
    import torch

    ramp = torch.linspace(1, 0, n) ** rho
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def sgm_uniform(n: int, sigma_min: float, sigma_max: float, schedule: DiscreteSchedule) -> torch.Tensor:
    """`n` timesteps evenly spaced from sigma_max's down to (excluding) sigma_min's, then 0."""
    import torch

    start = schedule.sigma_to_t(torch.tensor(sigma_max))
    end = schedule.sigma_to_t(torch.tensor(sigma_min))
    sigmas = [schedule.t_to_sigma(t) for t in torch.linspace(start, end, n + 1)[:-1]]
    return torch.tensor([float(sigma) for sigma in sigmas] + [0.0], dtype=torch.float32)


def normal(n: int, sigma_min: float, sigma_max: float, schedule: DiscreteSchedule) -> torch.Tensor:
    """`n` timesteps evenly spaced from sigma_max's to sigma_min's (both included), then 0."""
    import torch

    start = schedule.sigma_to_t(torch.tensor(sigma_max))
    end = schedule.sigma_to_t(torch.tensor(sigma_min))
    sigmas = [schedule.t_to_sigma(t) for t in torch.linspace(start, end, n)]
    return torch.tensor([float(sigma) for sigma in sigmas] + [0.0], dtype=torch.float32)


def simple(n: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """Every (1000/n)-th model sigma counted down from the top, then 0."""
    import torch

    stride = len(schedule.sigmas) / n
    values = [float(schedule.sigmas[-(1 + int(index * stride))]) for index in range(n)]
    return torch.tensor([*values, 0.0], dtype=torch.float32)


def ddim_uniform(n: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """The model sigmas at timesteps 1, 1+k, 1+2k... (k = 1000 // n), highest first, then 0.

    Like A1111 this can give more than `n` steps when 1000 is not a multiple of `n`.
    """
    import torch

    stride = max(len(schedule.sigmas) // n, 1)
    values = [float(schedule.sigmas[index]) for index in range(1, len(schedule.sigmas), stride)]
    return torch.tensor([*values[::-1], 0.0], dtype=torch.float32)


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """n+1 sigmas evenly spaced in arctan(sigma) from sigma_max to sigma_min; A1111 appends no 0."""
    import torch

    alpha_min = torch.arctan(torch.tensor(sigma_min))
    alpha_max = torch.arctan(torch.tensor(sigma_max))
    step = torch.arange(n + 1)
    return torch.tan(step / n * alpha_min + (1.0 - step / n) * alpha_max)


def beta(n: int, sigma_min: float, sigma_max: float, alpha: float, beta_: float) -> torch.Tensor:
    """Lee et al. (2024): sigma_min + ppf(q) * (sigma_max - sigma_min) for q from 1 to 0 (beta distribution), then 0."""
    import numpy as np
    import torch
    from scipy import stats  # shipped with torchsde, a dependency of the generator extra

    quantiles = 1 - np.linspace(0, 1, n)
    values = [sigma_min + float(stats.beta.ppf(q, alpha, beta_)) * (sigma_max - sigma_min) for q in quantiles]
    return torch.tensor([*values, 0.0], dtype=torch.float32)


def ddim_timesteps(steps: int) -> list[int]:
    """The timesteps A1111's DDIM and PLMS visit, lowest first: 1, 1+k, 1+2k... with k = 1000 // steps.

    There are ceil(1000 / k) of them and the loop runs one step fewer, so 20 steps run 19 times and 30 steps 30 times;
    diffusers' `leading` spacing differs whenever 1000 % steps != 0.
    """
    if not 1 <= steps <= TRAINING_STEPS:
        raise GenerationError(f"DDIM and PLMS take 1 to {TRAINING_STEPS} steps, not {steps}")
    return [min(max(t + 1, 0), TRAINING_STEPS - 1) for t in range(0, TRAINING_STEPS, TRAINING_STEPS // steps)]


def timestep_sigmas(timesteps: list[int], schedule: DiscreteSchedule) -> torch.Tensor:
    """The model sigmas of `timesteps`, highest first (no 0 appended)."""
    import torch

    index = torch.tensor(sorted(timesteps, reverse=True))
    return schedule.sigmas[index].float().clone()


def unipc_sigmas(steps: int, schedule: DiscreteSchedule) -> torch.Tensor:
    """The noise levels of A1111's UniPC grid: `steps` + 1 times evenly spaced from t=1 to t=1/1000.

    UniPC's discrete noise schedule interpolates log(alpha) = log(alphas_cumprod)/2 linearly in t, with timestep
    n at t = (n + 1)/1000; sigma = sqrt(1/alpha**2 - 1). It ends at timestep 0's sigma, not at 0.
    """
    import numpy as np
    import torch

    grid = torch.linspace(1.0, 1.0 / TRAINING_STEPS, steps + 1).double().numpy()
    knots = torch.linspace(0.0, 1.0, TRAINING_STEPS + 1)[1:].double().numpy()
    log_alpha = (0.5 * torch.log(schedule.alphas_cumprod)).double().numpy()
    interpolated = np.interp(grid, knots, log_alpha)
    return torch.tensor(np.sqrt(np.expm1(-2.0 * interpolated)), dtype=torch.float32)


def _check_family(family: str) -> str:
    canonical = str(family).strip().lower()
    if canonical not in SUPPORTED_FAMILIES:
        raise GenerationError(
            f"A1111's samplers are reproduced for {', '.join(SUPPORTED_FAMILIES)} models, not {family!r}: "
            "other families are trained on a different noise schedule"
        )
    return canonical


def schedule_sigmas(
    schedule_name: str,
    steps: int,
    *,
    family: str = "sd1",
    downcast_alphas: bool = False,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float | None = None,
    beta_alpha: float = BETA_ALPHA_DEFAULT,
    beta_beta: float = BETA_BETA_DEFAULT,
) -> torch.Tensor:
    """`steps` steps of one schedule type (a label or name, not "Automatic") over the model's sigma range."""
    info = find_schedule(schedule_name)
    if info.name == "automatic":
        raise GenerationError("resolve 'Automatic' to a schedule first (a1111_sigmas does it for a sampler)")
    if steps < 1:
        raise GenerationError(f"sampling needs at least one step, not {steps}")
    model = model_schedule(downcast_alphas)
    if info.name == "uniform":
        return model.get_sigmas(steps)
    low = model.sigma_min if not sigma_min else float(sigma_min)
    high = model.sigma_max if not sigma_max else float(sigma_max)
    if not 0 < low < high:
        raise GenerationError(f"the schedule needs 0 < sigma min < sigma max, not {low} and {high}")
    rho_value = float(rho) if rho and info.default_rho is not None else info.default_rho
    builders: dict[str, Callable[[], torch.Tensor]] = {
        "karras": lambda: karras(steps, low, high, rho_value or 7.0),
        "exponential": lambda: exponential(steps, low, high),
        "polyexponential": lambda: polyexponential(steps, low, high, rho_value or 1.0),
        "sgm_uniform": lambda: sgm_uniform(steps, low, high, model),
        "kl_optimal": lambda: kl_optimal(steps, low, high),
        "align_your_steps": lambda: _as_tensor(align_your_steps(steps, _check_family(family))),
        "simple": lambda: simple(steps, model),
        "normal": lambda: normal(steps, low, high, model),
        "ddim": lambda: ddim_uniform(steps, model),
        "beta": lambda: beta(steps, low, high, beta_alpha, beta_beta),
    }
    return builders[info.name]()


def _as_tensor(values: list[float]) -> torch.Tensor:
    import torch

    return torch.tensor(values, dtype=torch.float32)


def a1111_sigmas(
    sampler: str,
    steps: int,
    schedule: str = "Automatic",
    family: str = "sd1",
    *,
    version: str | None = None,
    downcast_alphas: bool = False,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float | None = None,
    discard_penultimate: bool = False,
    beta_alpha: float = BETA_ALPHA_DEFAULT,
    beta_beta: float = BETA_BETA_DEFAULT,
) -> torch.Tensor:
    """The float32 sigma list A1111 samples `steps` steps of `sampler` with (highest first, usually ending in 0).

    `sampler` is an A1111 label, old combined names included (`DPM++ 2M Karras`); `schedule` the `Schedule type`
    ("Automatic" means the sampler's default for the A1111 `version` that wrote the infotext). `downcast_alphas` is
    `Downcast alphas_cumprod`; `sigma_min`, `sigma_max` and `rho` are `Schedule min sigma`, `Schedule max sigma` and
    `Schedule rho` (None or 0: the model's values, as in A1111); `discard_penultimate` is `Discard penultimate
    sigma` (A1111's "always discard" setting; DPM2, DPM2 a and DPM++ 3M SDE always discard);
    `beta_alpha`/`beta_beta` are `Beta schedule alpha`/`beta`. `family` picks the Align Your Steps list.

    For DDIM and PLMS the list holds the sigmas of A1111's timesteps, for UniPC those of its time grid; both end
    at the last noise level visited, not at 0 (`sample` then returns the latent A1111 decodes).
    """
    family = _check_family(family)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GenerationError(f"sampling needs a whole number of steps of at least 1, not {steps!r}")
    resolved = resolve_sampler(sampler, schedule, version)
    info = resolved.sampler
    discard = info.discard_penultimate or bool(discard_penultimate)
    total = steps + 1 if discard else steps
    model = model_schedule(downcast_alphas)
    if info.kind == TIMESTEP:
        # A1111 only counts one more step for them when asked to discard; it drops no timestep.
        timesteps = ddim_timesteps(total)
        if info.algorithm == "unipc":
            return unipc_sigmas(len(timesteps), model)
        return timestep_sigmas(timesteps, model)
    sigmas = schedule_sigmas(
        resolved.schedule,
        total,
        family=family,
        downcast_alphas=downcast_alphas,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        rho=rho,
        beta_alpha=beta_alpha,
        beta_beta=beta_beta,
    )
    if discard:
        import torch

        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas.float()


def a1111_img2img_steps(
    steps: int, denoising_strength: float, *, hires_steps: int | None = None, fix_steps: bool = False
) -> tuple[int, int]:
    """A1111's `setup_img2img_steps`: (steps of the full sigma list, index offset `t_enc`) for an img2img pass.

    A hires pass (`hires_steps` given; `Hires steps: 0` means the first pass's `steps`) or img2img with A1111's
    "do exactly the amount of steps the slider specifies" setting (`fix_steps`) builds a list for
    `int(steps / min(strength, 0.999))` steps and runs exactly `steps` of them; plain img2img builds `steps` and runs
    `int(min(strength, 0.999) * steps) + 1`.
    """
    if not denoising_strength > 0:
        raise GenerationError(f"an img2img pass needs a denoising strength above 0, not {denoising_strength}")
    strength = min(float(denoising_strength), 0.999)
    if hires_steps is not None or fix_steps:
        requested = hires_steps or steps
        return int(requested / strength), requested - 1
    return steps, int(strength * steps)


def a1111_img2img_sigmas(
    sampler: str,
    steps: int,
    denoising_strength: float,
    schedule: str = "Automatic",
    family: str = "sd1",
    *,
    hires_steps: int | None = None,
    fix_steps: bool = False,
    version: str | None = None,
    downcast_alphas: bool = False,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float | None = None,
    discard_penultimate: bool = False,
    beta_alpha: float = BETA_ALPHA_DEFAULT,
    beta_beta: float = BETA_BETA_DEFAULT,
) -> torch.Tensor:
    """The tail of the sigma list that A1111's img2img and hires-fix passes sample (k-diffusion samplers).

    The step counts follow `a1111_img2img_steps`; the pass starts from `image_latent + noise * result[0]`. For the
    Brownian samplers A1111 builds the tree over the *full* list, not this tail: pass
    `noise_sampler=brownian_noise_sampler(x, full[full > 0].min(), full.max(), seeds)` with
    `full = a1111_sigmas(sampler, a1111_img2img_steps(...)[0], ...)`.
    """
    if resolve_sampler(sampler, schedule, version).sampler.kind == TIMESTEP:
        raise GenerationError(f"img2img with {sampler} runs on timesteps and is not reproduced here")
    total, t_enc = a1111_img2img_steps(steps, denoising_strength, hires_steps=hires_steps, fix_steps=fix_steps)
    sigmas = a1111_sigmas(
        sampler,
        total,
        schedule,
        family,
        version=version,
        downcast_alphas=downcast_alphas,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        rho=rho,
        discard_penultimate=discard_penultimate,
        beta_alpha=beta_alpha,
        beta_beta=beta_beta,
    )
    return sigmas[total - t_enc - 1 :]
