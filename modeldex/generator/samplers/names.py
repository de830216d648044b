"""A1111's sampler and schedule names: labels, aliases, per-sampler options and what "Automatic" means.

Pure Python (no torch), so parsers and the CLI can validate names cheaply.

A1111 up to 1.8 wrote combined names (`DPM++ 2M Karras`); 1.9 split them into `Sampler` + `Schedule type` and gave
each sampler a default schedule that "Automatic" stands for. Before 1.9 a sampler without a schedule suffix used
the model's own discrete sigmas ("Uniform"). A trailing schedule name is stripped from the sampler name exactly as
A1111's `get_sampler_and_scheduler` does, and wins over `Schedule type`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modeldex.errors import GenerationError

KDIFFUSION = "kdiffusion"
TIMESTEP = "timestep"


@dataclass(frozen=True)
class SamplerInfo:
    """One A1111 sampler and the options its table gives it."""

    label: str
    """A1111's name, e.g. `DPM++ 2M`."""
    algorithm: str
    """The loop that runs it, e.g. `dpmpp_2m` (k-diffusion's `sample_dpmpp_2m`) or `ddim`."""
    kind: str
    """`kdiffusion` (sigma loops) or `timestep` (A1111's DDIM, PLMS, UniPC)."""
    aliases: tuple[str, ...] = ()
    default_schedule: str | None = None
    """The schedule "Automatic" means in A1111 1.9 and later; None: the model's discrete sigmas."""
    discard_penultimate: bool = False
    uses_ensd: bool = False
    brownian_noise: bool = False
    second_order: bool = False
    solver_type: str | None = None


@dataclass(frozen=True)
class ScheduleInfo:
    """One A1111 schedule type (`modules/sd_schedulers.py`)."""

    name: str
    label: str
    aliases: tuple[str, ...] = ()
    default_rho: float | None = None
    """Only Karras and Polyexponential take `Schedule rho`."""


SAMPLERS: tuple[SamplerInfo, ...] = (
    SamplerInfo("DPM++ 2M", "dpmpp_2m", KDIFFUSION, ("k_dpmpp_2m",), "karras"),
    SamplerInfo(
        "DPM++ SDE", "dpmpp_sde", KDIFFUSION, ("k_dpmpp_sde",), "karras", brownian_noise=True, second_order=True
    ),
    SamplerInfo("DPM++ 2M SDE", "dpmpp_2m_sde", KDIFFUSION, ("k_dpmpp_2m_sde",), "exponential", brownian_noise=True),
    SamplerInfo(
        "DPM++ 2M SDE Heun",
        "dpmpp_2m_sde",
        KDIFFUSION,
        ("k_dpmpp_2m_sde_heun",),
        "exponential",
        brownian_noise=True,
        solver_type="heun",
    ),
    SamplerInfo(
        "DPM++ 2S a", "dpmpp_2s_ancestral", KDIFFUSION, ("k_dpmpp_2s_a",), "karras", uses_ensd=True, second_order=True
    ),
    SamplerInfo(
        "DPM++ 3M SDE",
        "dpmpp_3m_sde",
        KDIFFUSION,
        ("k_dpmpp_3m_sde",),
        "exponential",
        discard_penultimate=True,
        brownian_noise=True,
    ),
    SamplerInfo("Euler a", "euler_ancestral", KDIFFUSION, ("k_euler_a", "k_euler_ancestral"), uses_ensd=True),
    SamplerInfo("Euler", "euler", KDIFFUSION, ("k_euler",)),
    SamplerInfo("LMS", "lms", KDIFFUSION, ("k_lms",)),
    SamplerInfo("Heun", "heun", KDIFFUSION, ("k_heun",), second_order=True),
    SamplerInfo("DPM2", "dpm_2", KDIFFUSION, ("k_dpm_2",), "karras", discard_penultimate=True, second_order=True),
    SamplerInfo(
        "DPM2 a",
        "dpm_2_ancestral",
        KDIFFUSION,
        ("k_dpm_2_a",),
        "karras",
        discard_penultimate=True,
        uses_ensd=True,
        second_order=True,
    ),
    SamplerInfo("DDIM", "ddim", TIMESTEP, ("ddim",)),
    SamplerInfo("PLMS", "plms", TIMESTEP, ("plms",)),
    SamplerInfo("UniPC", "unipc", TIMESTEP, ("unipc",)),
)

SCHEDULES: tuple[ScheduleInfo, ...] = (
    ScheduleInfo("automatic", "Automatic"),
    ScheduleInfo("uniform", "Uniform"),
    ScheduleInfo("karras", "Karras", default_rho=7.0),
    ScheduleInfo("exponential", "Exponential"),
    ScheduleInfo("polyexponential", "Polyexponential", default_rho=1.0),
    ScheduleInfo("sgm_uniform", "SGM Uniform", ("SGMUniform",)),
    ScheduleInfo("kl_optimal", "KL Optimal"),
    ScheduleInfo("align_your_steps", "Align Your Steps"),
    ScheduleInfo("simple", "Simple"),
    ScheduleInfo("normal", "Normal"),
    ScheduleInfo("ddim", "DDIM"),
    ScheduleInfo("beta", "Beta"),
)

# A1111 samplers this package does not run (they need A1111's own code or take no sigma list).
UNSUPPORTED_SAMPLERS = ("DPM fast", "DPM adaptive", "Restart", "LCM", "DDIM CFG++")

# The A1111 release that split sampler and schedule and introduced per-sampler default schedules.
SPLIT_SCHEDULE_VERSION = (1, 9, 0)

_SAMPLER_BY_KEY = {key.casefold(): info for info in SAMPLERS for key in (info.label, *info.aliases)}
_SCHEDULE_BY_KEY = {key.casefold(): info for info in SCHEDULES for key in (info.name, info.label, *info.aliases)}
_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ResolvedSampler:
    """A sampler name and schedule type turned into what A1111 ran."""

    sampler: SamplerInfo
    schedule: str
    """A schedule name (`karras`, `uniform`...); `timesteps` for DDIM, PLMS and UniPC, which ignore schedule types."""


def a1111_version(version: str | None) -> tuple[int, int, int] | None:
    """The A1111 release in an infotext's `Version` (`v1.10.1`, `1.8.0-RC`, Forge's `f2.0.1v1.10.1-previous-...`)."""
    if not version:
        return None
    text = str(version).strip()
    forge = re.match(r"f\d+(?:\.\d+)*v(\d+\.\d+(?:\.\d+)?)", text)
    if forge:
        text = forge.group(1)
    match = _VERSION_RE.search(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def find_schedule(name: str) -> ScheduleInfo:
    """A schedule type by A1111 label, internal name or alias, case-insensitively."""
    info = _SCHEDULE_BY_KEY.get(str(name).strip().casefold())
    if info is None:
        known = ", ".join(schedule.label for schedule in SCHEDULES)
        raise GenerationError(f"unknown schedule type {name!r}: expected one of {known}")
    return info


def split_sampler_name(name: str) -> tuple[str, ScheduleInfo | None]:
    """Strip trailing schedule names (`DPM++ 2M Karras` -> `DPM++ 2M`, Karras) as A1111 does."""
    base = str(name).strip()
    found: ScheduleInfo | None = None
    for schedule in SCHEDULES:
        for option in (schedule.label, schedule.name, *schedule.aliases):
            suffix = " " + option
            if base.casefold().endswith(suffix.casefold()) and len(base) > len(suffix):
                found = schedule
                base = base[: -len(suffix)]
                break
    return base, found


def find_sampler(name: str) -> SamplerInfo:
    """A sampler by A1111 label or alias (`k_euler_a`), case-insensitively; combined names are not split here."""
    info = _SAMPLER_BY_KEY.get(str(name).strip().casefold())
    if info is None:
        if any(str(name).strip().casefold() == unsupported.casefold() for unsupported in UNSUPPORTED_SAMPLERS):
            raise GenerationError(f"sampler {name!r} is not supported for reproduction")
        known = ", ".join(sampler.label for sampler in SAMPLERS)
        raise GenerationError(f"unknown sampler {name!r}: expected one of {known}")
    return info


def resolve_sampler(sampler: str, schedule: str | None = "Automatic", version: str | None = None) -> ResolvedSampler:
    """The sampler and the schedule A1111 used for an infotext's `Sampler`, `Schedule type` and `Version`.

    "Automatic" (or no schedule) means the sampler's default schedule from A1111 1.9 on, and the model's discrete
    sigmas before 1.9. An unknown or missing `version` is taken as a current A1111, as A1111 itself does when it
    reads an infotext.
    """
    base, suffix_schedule = split_sampler_name(sampler)
    info = find_sampler(base)
    if info.kind == TIMESTEP:
        return ResolvedSampler(info, "timesteps")
    chosen = suffix_schedule or find_schedule(schedule or "Automatic")
    if chosen.name != "automatic":
        return ResolvedSampler(info, chosen.name)
    parsed = a1111_version(version)
    if parsed is not None and parsed < SPLIT_SCHEDULE_VERSION:
        return ResolvedSampler(info, "uniform")
    return ResolvedSampler(info, info.default_schedule or "uniform")


def sampler_labels() -> list[str]:
    """Every sampler label this package can run, in A1111's order."""
    return [info.label for info in SAMPLERS]


def schedule_labels() -> list[str]:
    """Every schedule type label A1111 writes."""
    return [info.label for info in SCHEDULES]
