"""A1111 sigma lists, checked against values derived here from the formulas (numpy, float64)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import special

from modeldex.errors import GenerationError
from modeldex.generator.samplers import a1111_img2img_sigmas, a1111_img2img_steps, a1111_sigmas, schedule_sigmas
from modeldex.generator.samplers.ays import AYS_SIGMAS
from modeldex.generator.samplers.names import (
    SAMPLERS,
    a1111_version,
    find_sampler,
    resolve_sampler,
    sampler_labels,
    schedule_labels,
    split_sampler_name,
)
from modeldex.generator.samplers.schedules import ddim_timesteps


def sd_sigmas() -> np.ndarray:
    """SD's 1000 training sigmas from the scaled-linear betas 0.00085..0.012.

    The model stores alphas_cumprod as float32 and k-diffusion computes the sigmas from them in float32, which
    moves the smallest sigma by 1e-5 relative to a float64 computation: do the same here.
    """
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas).astype(np.float32)
    return np.sqrt((np.float32(1) - alphas_cumprod) / alphas_cumprod).astype(np.float64)


SIGMAS = sd_sigmas()
SIGMA_MIN, SIGMA_MAX = SIGMAS[0], SIGMAS[-1]


def log_linear(t: np.ndarray) -> np.ndarray:
    """Sigma at fractional timesteps by linear interpolation of log sigma (k-diffusion's t_to_sigma)."""
    return np.exp(np.interp(t, np.arange(1000), np.log(SIGMAS)))


def assert_close(actual: torch.Tensor, expected, rel: float = 2e-6, abs_: float = 1e-7) -> None:
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.dtype == torch.float32
    assert tuple(actual.shape) == expected.shape
    np.testing.assert_allclose(actual.double().numpy(), expected, rtol=rel, atol=abs_)


def test_model_range_is_sd_training_schedule():
    sigmas = a1111_sigmas("Euler", 5)
    assert float(sigmas[0]) == pytest.approx(14.6146, abs=1e-4)
    assert float(sigmas[-2]) == pytest.approx(0.0292, abs=1e-4)
    assert float(sigmas[0]) == pytest.approx(SIGMA_MAX, rel=1e-6)
    assert float(sigmas[-2]) == pytest.approx(SIGMA_MIN, rel=1e-5)


@pytest.mark.parametrize("steps", [1, 7, 20, 33])
def test_uniform_is_log_linear_interpolation_over_timesteps(steps):
    expected = [*log_linear(np.linspace(999, 0, steps)), 0.0]
    assert_close(a1111_sigmas("Euler", steps), expected)
    assert_close(a1111_sigmas("Euler a", steps, "Uniform"), expected)


def test_known_twenty_step_values():
    sigmas = a1111_sigmas("Euler a", 20)
    assert [round(float(s), 4) for s in sigmas[:3]] == [14.6146, 10.7468, 8.0815]
    assert len(sigmas) == 21 and float(sigmas[-1]) == 0.0


@pytest.mark.parametrize("steps", [1, 2, 10, 25])
def test_karras_by_hand(steps):
    ramp = np.linspace(0, 1, steps)
    lo, hi = SIGMA_MIN ** (1 / 7), SIGMA_MAX ** (1 / 7)
    expected = [*((hi + ramp * (lo - hi)) ** 7), 0.0]
    assert_close(a1111_sigmas("DPM++ 2M", steps, "Karras"), expected, rel=1e-5)


def test_karras_overrides_min_max_and_rho():
    ramp = np.linspace(0, 1, 8)
    lo, hi = 0.1 ** (1 / 3), 10.0 ** (1 / 3)
    expected = [*((hi + ramp * (lo - hi)) ** 3), 0.0]
    assert_close(a1111_sigmas("Euler", 8, "Karras", sigma_min=0.1, sigma_max=10.0, rho=3.0), expected, rel=1e-5)


def test_overrides_of_zero_mean_the_model_values_and_uniform_ignores_them():
    assert torch.equal(a1111_sigmas("Euler", 8, "Karras", sigma_min=0, rho=0), a1111_sigmas("Euler", 8, "Karras"))
    assert torch.equal(a1111_sigmas("Euler", 8, "Uniform", sigma_min=0.5), a1111_sigmas("Euler", 8, "Uniform"))


def test_exponential_by_hand():
    expected = [*np.exp(np.linspace(math.log(SIGMA_MAX), math.log(SIGMA_MIN), 12)), 0.0]
    assert_close(a1111_sigmas("DPM++ 2M SDE", 12), expected, rel=1e-5)
    assert_close(a1111_sigmas("Euler", 12, "Exponential"), expected, rel=1e-5)


def test_polyexponential_by_hand():
    ramp = np.linspace(1, 0, 9) ** 2.0
    expected = [*np.exp(ramp * (math.log(SIGMA_MAX) - math.log(SIGMA_MIN)) + math.log(SIGMA_MIN)), 0.0]
    assert_close(a1111_sigmas("Euler", 9, "Polyexponential", rho=2.0), expected, rel=1e-5)
    # rho 1 (its default) is the exponential schedule
    assert_close(a1111_sigmas("Euler", 9, "Polyexponential"), a1111_sigmas("Euler", 9, "Exponential").numpy(), 1e-5)


def test_kl_optimal_ends_at_sigma_min_without_a_zero():
    k = np.arange(11) / 10
    expected = np.tan(k * math.atan(SIGMA_MIN) + (1 - k) * math.atan(SIGMA_MAX))
    assert_close(a1111_sigmas("Euler", 10, "KL Optimal"), expected, rel=1e-5)


def test_align_your_steps_published_lists_and_resampling():
    assert_close(a1111_sigmas("Euler", 11, "Align Your Steps"), [*AYS_SIGMAS["sd1"], 0.0])
    assert_close(a1111_sigmas("Euler", 11, "Align Your Steps", "sdxl"), [*AYS_SIGMAS["sdxl"], 0.0])
    assert AYS_SIGMAS["sd1"][1] == 6.475 and AYS_SIGMAS["sdxl"][1] == 6.315
    # another step count: log sigma interpolated linearly over an evenly spaced position
    published = np.log(np.array(AYS_SIGMAS["sd1"]))
    positions = np.linspace(0, 10, 6)
    expected = [math.exp(np.interp(p, np.arange(11), published)) for p in positions]
    assert_close(a1111_sigmas("Euler", 6, "Align Your Steps", "sd2"), [*expected, 0.0], rel=1e-6)


def test_sgm_uniform_drops_the_last_timestep():
    expected = [*log_linear(np.linspace(999, 0, 9)[:-1]), 0.0]
    assert_close(a1111_sigmas("Euler", 8, "SGM Uniform"), expected, rel=1e-5)
    assert torch.equal(a1111_sigmas("Euler", 8, "SGMUniform"), a1111_sigmas("Euler", 8, "sgm_uniform"))


def test_normal_spans_the_range_like_uniform():
    assert_close(a1111_sigmas("Euler", 10, "Normal"), a1111_sigmas("Euler", 10, "Uniform").numpy(), rel=1e-5)
    narrowed = a1111_sigmas("Euler", 10, "Normal", sigma_max=5.0)
    assert float(narrowed[0]) == pytest.approx(5.0, rel=1e-4)


def test_simple_takes_every_kth_model_sigma():
    expected = [*(SIGMAS[-(1 + int(i * 1000 / 7))] for i in range(7)), 0.0]
    assert_close(a1111_sigmas("Euler", 7, "Simple"), expected, rel=1e-6)


def test_ddim_schedule_type_uses_a1111_ddim_timesteps():
    expected = [*SIGMAS[list(range(1, 1000, 1000 // 30))][::-1], 0.0]
    sigmas = a1111_sigmas("Euler", 30, "DDIM")
    assert len(sigmas) == 32  # 31 steps for 30: 1000 is not a multiple of 30
    assert_close(sigmas, expected, rel=1e-6)


def test_beta_schedule_follows_the_beta_quantiles():
    sigmas = a1111_sigmas("Euler", 9, "Beta").double().numpy()
    quantiles = 1 - np.linspace(0, 1, 9)
    expected = SIGMA_MIN + special.betaincinv(0.6, 0.6, quantiles) * (SIGMA_MAX - SIGMA_MIN)
    np.testing.assert_allclose(sigmas[:-1], expected, rtol=1e-5)
    assert sigmas[-1] == 0.0
    assert sigmas[4] == pytest.approx((SIGMA_MIN + SIGMA_MAX) / 2, rel=1e-5)  # symmetric distribution
    skewed = a1111_sigmas("Euler", 9, "Beta", beta_alpha=2.0, beta_beta=0.5).double().numpy()
    np.testing.assert_allclose(
        skewed[:-1], SIGMA_MIN + special.betaincinv(2.0, 0.5, quantiles) * (SIGMA_MAX - SIGMA_MIN), rtol=1e-5
    )


def test_discard_penultimate_for_dpm2_and_3m_sde():
    karras_11 = a1111_sigmas("Euler", 11, "Karras")
    dpm2 = a1111_sigmas("DPM2", 10)
    assert len(dpm2) == 11
    assert torch.equal(dpm2, torch.cat([karras_11[:-2], karras_11[-1:]]))
    assert torch.equal(a1111_sigmas("DPM2 a Karras", 10), dpm2)
    exponential_6 = a1111_sigmas("Euler", 6, "Exponential")
    assert torch.equal(a1111_sigmas("DPM++ 3M SDE", 5), torch.cat([exponential_6[:-2], exponential_6[-1:]]))
    forced = a1111_sigmas("Euler", 5, discard_penultimate=True)
    uniform_6 = a1111_sigmas("Euler", 6)
    assert torch.equal(forced, torch.cat([uniform_6[:-2], uniform_6[-1:]]))


def test_combined_names_equal_split_sampler_and_schedule():
    assert torch.equal(a1111_sigmas("DPM++ 2M Karras", 20), a1111_sigmas("DPM++ 2M", 20, "Karras"))
    assert torch.equal(a1111_sigmas("DPM++ 2M SDE Exponential", 9), a1111_sigmas("DPM++ 2M SDE", 9, "Exponential"))
    assert torch.equal(a1111_sigmas("dpm++ sde karras", 9), a1111_sigmas("DPM++ SDE", 9, "karras"))
    # the sampler name's suffix wins over Schedule type, as in A1111
    assert torch.equal(a1111_sigmas("Euler Karras", 9, "Exponential"), a1111_sigmas("Euler", 9, "Karras"))


DEFAULT_SCHEDULES = {
    "DPM++ 2M": "karras",
    "DPM++ SDE": "karras",
    "DPM++ 2M SDE": "exponential",
    "DPM++ 2M SDE Heun": "exponential",
    "DPM++ 2S a": "karras",
    "DPM++ 3M SDE": "exponential",
    "DPM2": "karras",
    "DPM2 a": "karras",
    "Euler a": "uniform",
    "Euler": "uniform",
    "LMS": "uniform",
    "Heun": "uniform",
}


@pytest.mark.parametrize(("sampler", "schedule"), sorted(DEFAULT_SCHEDULES.items()))
def test_automatic_means_the_1_9_default_schedule(sampler, schedule):
    assert resolve_sampler(sampler, "Automatic", "v1.10.1").schedule == schedule
    assert resolve_sampler(sampler, None).schedule == schedule
    # before 1.9 the plain name had no schedule of its own: the model's discrete sigmas
    assert resolve_sampler(sampler, "Automatic", "v1.8.0").schedule == "uniform"


def test_automatic_by_version_changes_the_sigmas():
    assert torch.equal(a1111_sigmas("DPM++ 2M", 20, version="v1.9.4"), a1111_sigmas("DPM++ 2M", 20, "Karras"))
    assert torch.equal(a1111_sigmas("DPM++ 2M", 20, version="1.7.0"), a1111_sigmas("DPM++ 2M", 20, "Uniform"))
    forge_old = "f0.0.17v1.8.0rc-latest-276-g29be1da7"
    assert torch.equal(a1111_sigmas("DPM++ 2M", 20, version=forge_old), a1111_sigmas("Euler", 20))
    assert torch.equal(a1111_sigmas("DPM++ 2M Karras", 20, version="1.5.1"), a1111_sigmas("Euler", 20, "Karras"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.10.1", (1, 10, 1)),
        ("1.8.0-RC", (1, 8, 0)),
        ("v1.7.0-225-g1234abcd", (1, 7, 0)),
        ("f2.0.1v1.10.1-previous-669-gdfdcbab6", (1, 10, 1)),
        ("v1.6", (1, 6, 0)),
        ("", None),
        (None, None),
        ("nightly", None),
    ],
)
def test_a1111_version_parsing(text, expected):
    assert a1111_version(text) == expected


def test_downcast_alphas_rounds_the_schedule_to_float16():
    alphas_cumprod = np.cumprod(1.0 - np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2)
    half = alphas_cumprod.astype(np.float32).astype(np.float16)
    half_sigmas = np.sqrt((np.float16(1) - half) / half)  # numpy rounds every float16 operation, as torch does
    assert float(half_sigmas[-1]) == 14.609375 and float(half_sigmas[0]) == 0.03125
    # the default schedule interpolates the float16 log sigmas
    half_log = np.log(half_sigmas).astype(np.float16)
    sigmas = a1111_sigmas("Euler", 4, downcast_alphas=True)
    assert float(sigmas[0]) == pytest.approx(math.exp(float(half_log[-1])), rel=1e-6)
    assert float(sigmas[-2]) == pytest.approx(math.exp(float(half_log[0])), rel=1e-6)
    # schedules over the model range take the float16 sigmas themselves
    karras = a1111_sigmas("DPM++ 2M", 4, downcast_alphas=True)
    assert float(karras[0]) == pytest.approx(14.609375, rel=1e-6)
    assert float(karras[-2]) == pytest.approx(0.03125, rel=1e-6)
    assert float(a1111_sigmas("DPM++ 2M", 4)[-2]) == pytest.approx(0.0292, abs=1e-4)


def test_ddim_timesteps_differ_from_diffusers_leading_spacing():
    assert ddim_timesteps(20) == list(range(1, 1000, 50))
    thirty = ddim_timesteps(30)
    assert thirty == list(range(1, 1000, 33)) and len(thirty) == 31
    diffusers_leading = sorted(int(t) + 1 for t in np.arange(0, 30) * (1000 // 30))
    assert thirty[:30] == diffusers_leading and thirty != diffusers_leading
    with pytest.raises(GenerationError):
        ddim_timesteps(1001)


def test_timestep_sampler_sigmas_end_at_the_last_timestep():
    ddim = a1111_sigmas("DDIM", 20)
    assert len(ddim) == 20
    assert_close(ddim, SIGMAS[list(range(1, 1000, 50))][::-1], rel=1e-6)
    assert torch.equal(a1111_sigmas("PLMS", 20), ddim)
    # timestep samplers ignore schedule types
    assert torch.equal(a1111_sigmas("DDIM", 20, "Karras"), ddim)


def test_unipc_sigmas_follow_its_time_uniform_grid():
    sigmas = a1111_sigmas("UniPC", 10)  # 10 timesteps -> 10 UniPC steps, 11 noise levels
    grid = np.linspace(1.0, 0.001, 11)
    knots = np.arange(1, 1001) / 1000
    log_alpha = np.interp(grid, knots, 0.5 * np.log(1 / (1 + SIGMAS**2)))
    assert_close(sigmas, np.sqrt(np.exp(-2 * log_alpha) - 1), rel=2e-5)
    assert float(sigmas[0]) == pytest.approx(SIGMA_MAX, rel=1e-5)
    assert float(sigmas[-1]) == pytest.approx(SIGMA_MIN, rel=1e-5)
    assert len(a1111_sigmas("UniPC", 30)) == 32  # A1111 runs UniPC for len(DDIM timesteps) steps


def test_schedule_sigmas_rejects_automatic():
    with pytest.raises(GenerationError, match="Automatic"):
        schedule_sigmas("Automatic", 10)
    assert torch.equal(schedule_sigmas("karras", 10), a1111_sigmas("Euler", 10, "Karras"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Euler", 0), "at least 1"),
        (("Euler", 2.5), "whole number"),
        (("Euler", 10, "Sharp"), "unknown schedule type"),
        (("Eulerr", 10), "unknown sampler"),
        (("DPM fast", 10), "not supported"),
        (("Euler", 10, "Automatic", "flux1"), "flux1"),
    ],
)
def test_bad_arguments_are_clear_errors(args, message):
    with pytest.raises(GenerationError, match=message):
        a1111_sigmas(*args)


def test_sampler_table_and_aliases():
    assert sampler_labels()[:6] == [
        "DPM++ 2M",
        "DPM++ SDE",
        "DPM++ 2M SDE",
        "DPM++ 2M SDE Heun",
        "DPM++ 2S a",
        "DPM++ 3M SDE",
    ]
    assert "Align Your Steps" in schedule_labels() and "Beta" in schedule_labels()
    assert find_sampler("k_euler_a").label == "Euler a"
    assert find_sampler("K_DPMPP_2M").label == "DPM++ 2M"
    assert split_sampler_name("DPM++ 2M SDE Heun Exponential")[0] == "DPM++ 2M SDE Heun"
    assert split_sampler_name("Euler a") == ("Euler a", None)
    ensd = {info.label for info in SAMPLERS if info.uses_ensd}
    assert ensd == {"Euler a", "DPM2 a", "DPM++ 2S a"}
    brownian = {info.label for info in SAMPLERS if info.brownian_noise}
    assert brownian == {"DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"}
    discard = {info.label for info in SAMPLERS if info.discard_penultimate}
    assert discard == {"DPM2", "DPM2 a", "DPM++ 3M SDE"}


def test_name_tables_and_the_package_import_no_torch():
    code = (
        "import sys\n"
        "import modeldex.generator, modeldex.generator.samplers, modeldex.generator.samplers.names\n"
        "import modeldex.generator.rng, modeldex.generator.rng_philox\n"
        "from modeldex.generator.samplers.names import resolve_sampler\n"
        "resolve_sampler('DPM++ 2M Karras')\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_hires_pass_runs_exactly_the_hires_steps():
    sigmas = a1111_img2img_sigmas("DPM++ 2M", 20, 0.5, hires_steps=10)
    assert len(sigmas) == 11  # int(10 / 0.5) = 20 steps built, the last 10 run
    assert torch.equal(sigmas, a1111_sigmas("DPM++ 2M", 20)[10:])
    # Hires steps 0 means the first pass's steps: int(15 / 0.7) = 21 built, 15 run
    zero = a1111_img2img_sigmas("Euler a", 15, 0.7, hires_steps=0)
    assert len(zero) == 16 and torch.equal(zero, a1111_sigmas("Euler a", 21)[6:])
    assert torch.equal(
        a1111_img2img_sigmas("Euler", 15, 0.7, fix_steps=True), a1111_img2img_sigmas("Euler", 15, 0.7, hires_steps=15)
    )


def test_plain_img2img_runs_a_strength_share_of_the_steps():
    sigmas = a1111_img2img_sigmas("Euler", 20, 0.75)
    assert torch.equal(sigmas, a1111_sigmas("Euler", 20)[4:])  # int(0.75 * 20) + 1 = 16 steps
    assert torch.equal(a1111_img2img_sigmas("Euler", 20, 1.0), a1111_sigmas("Euler", 20))  # capped at 0.999
    dpm2 = a1111_img2img_sigmas("DPM2", 10, 0.5)
    assert torch.equal(dpm2, a1111_sigmas("DPM2", 10)[4:])


def test_img2img_step_counts():
    assert a1111_img2img_steps(20, 0.5, hires_steps=10) == (20, 9)
    assert a1111_img2img_steps(20, 0.3, hires_steps=10) == (33, 9)
    assert a1111_img2img_steps(20, 0.75) == (20, 15)
    assert a1111_img2img_steps(20, 0.75, fix_steps=True) == (26, 19)


def test_img2img_sigmas_refuse_what_they_cannot_reproduce():
    with pytest.raises(GenerationError, match="denoising strength"):
        a1111_img2img_sigmas("Euler", 20, 0.0)
    with pytest.raises(GenerationError, match="timesteps"):
        a1111_img2img_sigmas("DDIM", 20, 0.5)
