"""Align Your Steps (NVIDIA, Sabour et al. 2024): the published 10-step sigma lists and their log-linear resampling.

A1111 uses the SDXL list for SDXL models and the SD 1.5 list for every other model, ignores the model's sigma range,
and for another step count interpolates log sigma linearly over an evenly spaced index, then appends 0.
"""

from __future__ import annotations

import numpy as np

AYS_SIGMAS: dict[str, tuple[float, ...]] = {
    "sd1": (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029),
    "sdxl": (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029),
}


def ays_family(family: str) -> str:
    """The list A1111 picks for a model family: SDXL's for SDXL (and its refiner), SD 1.5's otherwise."""
    return "sdxl" if str(family).strip().lower().startswith("sdxl") else "sd1"


def align_your_steps(n: int, family: str = "sd1") -> list[float]:
    """`n` sigmas from the family's list, then 0 (float64 values, as A1111 computes them before float32)."""
    sigmas = AYS_SIGMAS[ays_family(family)]
    if n == len(sigmas):
        return [*sigmas, 0.0]
    known_x = np.linspace(0, 1, len(sigmas))
    known_log = np.log(np.array(sigmas[::-1]))
    new_log = np.interp(np.linspace(0, 1, n), known_x, known_log)
    resampled = np.exp(new_log)[::-1]
    return [*(float(value) for value in resampled), 0.0]
