"""Brownian-tree noise for the SDE samplers, built on torchsde as k-diffusion's `BrownianTreeNoiseSampler` is.

A1111 gives DPM++ SDE, DPM++ 2M SDE (Heun) and DPM++ 3M SDE one Brownian tree per image, seeded with that image's
seed, over [smallest non-zero sigma, largest sigma]; a step's noise is the tree's increment between the two sigmas
divided by the square root of their distance. torchsde draws on the device of `x`, so a tree built on the CPU gives
different numbers from one built on a GPU. torch and torchsde are imported inside functions only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modeldex.errors import GenerationError

if TYPE_CHECKING:
    import torch


def _ordered(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    return (a, b, 1) if a < b else (b, a, -1)


class BrownianNoiseSampler:
    """Unit noise for the step between two sigmas, from one torchsde Brownian tree per seed."""

    def __init__(
        self,
        x: torch.Tensor,
        sigma_min: float | torch.Tensor,
        sigma_max: float | torch.Tensor,
        seed: int | Sequence[int] | None = None,
    ) -> None:
        import torch
        import torchsde

        t0, t1, self._sign = _ordered(torch.as_tensor(sigma_min), torch.as_tensor(sigma_max))
        w0 = torch.zeros_like(x)
        if seed is None:
            seed = int(torch.randint(0, 2**63 - 1, []).item())
        if isinstance(seed, int):
            seeds = [seed]
            self._batched = False
        else:
            seeds = [int(value) for value in seed]
            if len(seeds) != x.shape[0]:
                raise GenerationError(f"one Brownian seed per image is needed: got {len(seeds)} for {x.shape[0]}")
            w0 = w0[0]
            self._batched = True
        self._trees: list[Any] = [torchsde.BrownianTree(t0, w0, t1, entropy=value) for value in seeds]

    def __call__(self, sigma: float | torch.Tensor, sigma_next: float | torch.Tensor) -> torch.Tensor:
        """The noise for the step from `sigma` to `sigma_next` (both inside the tree's interval)."""
        import torch

        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        low, high, sign = _ordered(t0, t1)
        with warnings.catch_warnings():
            # Sigmas recomputed as exp(-(-log sigma)) land a float32 ulp outside the tree's interval, exactly as in
            # k-diffusion; torchsde warns about it and clamps, which changes nothing.
            warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
            increments = torch.stack([tree(low, high) for tree in self._trees]) * (self._sign * sign)
        noise = increments if self._batched else increments[0]
        return noise / (t1 - t0).abs().sqrt()


def brownian_noise_sampler(
    x: torch.Tensor,
    sigma_min: float | torch.Tensor,
    sigma_max: float | torch.Tensor,
    seed: int | Sequence[int] | None,
) -> BrownianNoiseSampler:
    """k-diffusion's Brownian-tree noise sampler over [sigma_min, sigma_max] for latents shaped like `x`.

    `seed` is one seed for the whole batch, or one per image (what A1111 passes: each image's own seed), or None
    for a random one.
    """
    return BrownianNoiseSampler(x, sigma_min, sigma_max, seed)
