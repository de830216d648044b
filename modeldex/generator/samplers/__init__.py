"""A1111's sigma schedules and sampling loops: `a1111_sigmas`, `sample`, `brownian_noise_sampler`.

Exports resolve lazily (PEP 562), so `modeldex.generator.samplers.names` can be imported without loading torch; the
numeric modules import torch inside their functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modeldex.generator.samplers.brownian import BrownianNoiseSampler, brownian_noise_sampler
    from modeldex.generator.samplers.names import SAMPLERS, SCHEDULES, resolve_sampler
    from modeldex.generator.samplers.sampling import initial_latent, sample
    from modeldex.generator.samplers.schedules import (
        a1111_img2img_sigmas,
        a1111_img2img_steps,
        a1111_sigmas,
        schedule_sigmas,
    )

__all__ = [
    "SAMPLERS",
    "SCHEDULES",
    "BrownianNoiseSampler",
    "a1111_img2img_sigmas",
    "a1111_img2img_steps",
    "a1111_sigmas",
    "brownian_noise_sampler",
    "initial_latent",
    "resolve_sampler",
    "sample",
    "schedule_sigmas",
]

_HOMES = {
    "a1111_sigmas": "schedules",
    "a1111_img2img_sigmas": "schedules",
    "a1111_img2img_steps": "schedules",
    "schedule_sigmas": "schedules",
    "sample": "sampling",
    "initial_latent": "sampling",
    "brownian_noise_sampler": "brownian",
    "BrownianNoiseSampler": "brownian",
    "resolve_sampler": "names",
    "SAMPLERS": "names",
    "SCHEDULES": "names",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
